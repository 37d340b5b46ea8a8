// blender_t2i job type for Flamenco 3: depth-conditioned images for a shot, spread over workers.
//
// Install: copy this file into the `scripts/` folder beside the flamenco-manager executable and
// restart the Manager; the Blender add-on then offers "T2I Generate" as a job type. Workers
// need Blender with the blender_t2i extension and a backend Python (see the README, "Render
// farms"). The Manager variable `t2i_batch` must name scripts/t2i_batch.py on each platform.
//
// The job is one prepare task (the depth range locked over the whole shot, the seed plan and
// the settings' hash, written to the output folder as shot.json) and one task per chunk of
// frames, each depending on the prepare task. Chunks run at once on many workers into the one
// output folder; each refuses to run against settings that differ from the prepared shot.

const JOB_TYPE = {
    label: "T2I Generate",
    description: "Depth-conditioned images for every frame of a shot (blender_t2i)",
    settings: [
        { key: "frames", type: "string", required: true,
          eval: "f'{C.scene.frame_start}-{C.scene.frame_end}'",
          evalInfo: { showLinkButton: true, description: "Scene frame range" },
          description: "Frames to generate, e.g. '1-48' or '1-10,20-30'" },
        { key: "chunk_size", type: "int32", default: 4, propargs: { min: 1 },
          description: "Frames per task; a worker keeps its model loaded within a task",
          visible: "submission" },
        { key: "output", type: "string", subtype: "hashed_file_path", required: true,
          eval: "str(Path(abspath('//'), 't2i', jobname, 'frame_####'))",
          description: "Output folder and file name; '#' is the zero-padded frame number. " +
                       "Must be a folder every worker can write to",
          visible: "submission" },
        { key: "prompt", type: "string", eval: "C.scene.t2i.prompt",
          description: "The prompt (empty: the scene's)", visible: "submission" },
        { key: "negative_prompt", type: "string", eval: "C.scene.t2i.negative_prompt",
          description: "The negative prompt (empty: the scene's)", visible: "submission" },
        { key: "preset", type: "string", eval: "C.scene.t2i.model_preset",
          description: "Model preset (empty: the scene's)", visible: "submission" },
        { key: "model", type: "string", default: "",
          description: "A model spec as JSON, used instead of the preset (optional)",
          visible: "submission" },
        { key: "seed", type: "int32", eval: "C.scene.t2i.seed",
          description: "Base seed", visible: "submission" },
        { key: "seed_mode", type: "string", default: "fixed", choices: ["fixed", "per-frame"],
          description: "fixed: one seed for every frame; per-frame: seed + frame number",
          visible: "submission" },
        { key: "steps", type: "int32", eval: "C.scene.t2i.steps",
          description: "Sampling steps", visible: "submission" },
        { key: "depth_range", type: "string", default: "locked",
          choices: ["locked", "auto", "clip"],
          description: "locked: one range over the whole shot, computed once by the " +
                       "prepare task; auto: per frame; clip: the camera's clip range",
          visible: "submission" },
        { key: "device", type: "string", default: "",
          description: "The workers' device (cuda:N counts the GPUs CUDA_VISIBLE_DEVICES " +
                       "leaves visible); empty: each worker's preference",
          visible: "submission" },
        { key: "t2i_batch", type: "string", default: "{t2i_batch}",
          description: "scripts/t2i_batch.py on the workers (a Manager variable by default)",
          visible: "web" },
        { key: "blendfile", type: "string", required: true, visible: "web",
          description: "The .blend file the workers open" },
    ],
};

// frameChunker with a chunk larger than any shot gives the whole range, normalised to
// "1-10,20-30" (the Blender notation "1..10" that Flamenco also accepts becomes "1-10").
const WHOLE_SHOT = 1000000;

function compileJob(job) {
    const settings = job.settings;
    if (!(settings.chunk_size >= 1)) {
        throw `chunk_size must be at least 1, not ${settings.chunk_size}`;
    }
    const shotArgs = t2iArgs(settings);

    const prepare = author.Task("t2i-prepare", "blender");
    const allFrames = frameChunker(settings.frames, WHOLE_SHOT)[0];
    prepare.addCommand(blenderCommand(settings,
        ["--prepare", "--frames", allFrames].concat(shotArgs)));
    job.addTask(prepare);

    for (const chunk of frameChunker(settings.frames, settings.chunk_size)) {
        const task = author.Task(`t2i-generate-${chunk}`, "blender");
        task.addCommand(blenderCommand(settings,
            ["--shot", "--frames", chunk].concat(shotArgs)));
        task.addDependency(prepare);
        job.addTask(task);
    }
}

// `blender -b -y shot.blend --python t2i_batch.py -- ARGS` on the worker.
function blenderCommand(settings, scriptArgs) {
    return author.Command("blender-render", {
        exe: "{blender}",
        exeArgs: "{blenderArgs}",
        argsBefore: [],
        blendfile: settings.blendfile,
        args: ["--python", settings.t2i_batch, "--"].concat(scriptArgs),
    });
}

// The same settings for the prepare task and every chunk: the chunks check them against
// the prepared shot. Settings left empty are not passed (the scene's value holds).
function t2iArgs(settings) {
    const args = ["--out", settings.output];
    const options = [
        ["--prompt", settings.prompt], ["--negative", settings.negative_prompt],
        ["--seed", settings.seed], ["--seed-mode", settings.seed_mode],
        ["--steps", settings.steps], ["--depth-range", settings.depth_range],
        ["--device", settings.device],
    ];
    // --model and --preset exclude each other: a model spec wins
    if (settings.model) {
        options.push(["--model", settings.model]);
    } else {
        options.push(["--preset", settings.preset]);
    }
    for (const option of options) {
        const value = option[1];
        if (value !== undefined && value !== null && `${value}` !== "") {
            args.push(option[0], `${value}`);
        }
    }
    return args;
}
