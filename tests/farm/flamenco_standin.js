// Runs a Flamenco job type's compileJob under Node, with stand-ins for the globals that the
// Flamenco Manager's job compiler gives a job type (author, frameChunker, path, print, ...),
// written from Flamenco's documented behaviour. Prints the compiled job as JSON.
//
//   node flamenco_standin.js JOB_TYPE.js SETTINGS.json

"use strict";

const fs = require("fs");
const nodePath = require("path");
const vm = require("vm");

// "1-4,9", "1..4" (Blender's notation) -> sorted unique frames
function explode(range) {
    const text = `${range}`.trim().split("..").join("-");
    if (text === "") {
        throw new Error(`invalid range "${range}": empty range`);
    }
    const frames = new Set();
    for (const part of text.split(",")) {
        const ends = part.split("-").map((s) => s.trim());
        const numbers = ends.map((s) => (/^\d+$/.test(s) ? Number(s) : NaN));
        if (ends.length > 2 || numbers.some(Number.isNaN)) {
            throw new Error(`invalid range "${range}": ${part}`);
        }
        const [start, end] = numbers.length === 1 ? [numbers[0], numbers[0]] : numbers;
        for (let frame = start; frame <= end; frame++) {
            frames.add(frame);
        }
    }
    return [...frames].sort((a, b) => a - b);
}

// consecutive frames as "A-B" when three or more, else listed: [1,2,3,7,8] -> "1-3,7,8"
function merge(frames) {
    const parts = [];
    let start = frames[0];
    for (let i = 1; i <= frames.length; i++) {
        if (i === frames.length || frames[i] !== frames[i - 1] + 1) {
            const end = frames[i - 1];
            if (end - start >= 2) {
                parts.push(`${start}-${end}`);
            } else {
                for (let f = start; f <= end; f++) parts.push(`${f}`);
            }
            start = frames[i];
        }
    }
    return parts.join(",");
}

function frameChunker(range, chunkSize) {
    if (!(chunkSize >= 1)) {
        throw new Error(`invalid chunk size, must be positive number: ${chunkSize}`);
    }
    const frames = explode(range);
    const chunks = [];
    for (let i = 0; i < frames.length; i += chunkSize) {
        chunks.push(merge(frames.slice(i, i + chunkSize)));
    }
    return chunks;
}

class Task {
    constructor(name, type) {
        this.name = name;
        this.type = type;
        this.commands = [];
        this.dependencies = [];
    }
    addCommand(command) { this.commands.push(command); }
    addDependency(task) { this.dependencies.push(task); }
}

const author = {
    Task: (name, type) => new Task(name, type),
    Command: (type, parameters) => ({ type, parameters }),
};

const path = {
    join: (...parts) => nodePath.posix.join(...parts),
    dirname: (p) => nodePath.posix.dirname(p),
    basename: (p) => nodePath.posix.basename(p),
    stem: (p) => nodePath.posix.parse(p).name,
};

function main() {
    const [jobTypeFile, settingsFile] = process.argv.slice(2);
    const printed = [];
    const context = vm.createContext({
        author, frameChunker, path,
        print: (...args) => printed.push(args.map(String).join(" ")),
        alert: (...args) => printed.push(args.map(String).join(" ")),
        formatTimestampLocal: (date) => date.toISOString().slice(0, 19).replace(/[:T]/g, ""),
    });
    const source = fs.readFileSync(jobTypeFile, "utf8");
    // `const JOB_TYPE` stays in the script's scope: hand it out for the checks
    vm.runInContext(`${source}\nthis.__jobType = JOB_TYPE;`, context, { filename: jobTypeFile });
    const jobType = context.__jobType;

    const given = JSON.parse(fs.readFileSync(settingsFile, "utf8"));
    const settings = {};
    for (const setting of jobType.settings) {  // the Manager fills in defaults
        if (setting.key in given) settings[setting.key] = given[setting.key];
        else if ("default" in setting) settings[setting.key] = setting.default;
    }
    const tasks = [];
    const job = {
        name: "t2i test job", created: new Date(), settings, metadata: {},
        addTask: (task) => tasks.push(task),
    };
    let error = null;
    try {
        context.compileJob(job);
    } catch (exc) {
        error = `${exc}`;
    }
    process.stdout.write(JSON.stringify({
        job_type: jobType, error, printed,
        tasks: tasks.map((t) => ({
            name: t.name, type: t.type, commands: t.commands,
            dependencies: t.dependencies.map((d) => d.name),
        })),
    }));
}

main();
