"""A validated generate request as a ComfyUI API graph, built from core nodes per family the
way ComfyUI's own examples wire each model. Pure: no I/O; model references are resolved
against the server's lists (families.resolve_reference), pictures are the names /upload/image
answered (Uploads).

Every graph: loaders -> LoRA chain -> text encoding -> the family's depth conditioning ->
latent (empty at width x height, or the init image encoded, with the mask as its noise mask)
-> sampler -> VAEDecode (-> the init image pasted back where the mask keeps it) -> SaveImage
named after the job id. The depth picture is scaled to width x height (ImageScale), so any
capture size works. docs/comfyui_graphs.md lists the nodes and folders per family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from t2i_core.presets import FAMILY_INFO
from t2i_core.protocol import GenerateRequest

from .families import (
    NOT_OFFERED,
    ServerInfo,
    default_reference,
    instantx,
    resolve_reference,
    starts_from_init,
)

Link = list  # [node id, output index], as the API format writes an input fed by a node


@dataclass(frozen=True)
class Uploads:
    """Names /upload/image answered ("name" with "subfolder" joined as LoadImage takes it)."""

    control: str
    init: str | None = None
    mask: str | None = None
    references: tuple[str, ...] = ()


# protocol scheduler -> (KSampler sampler_name, scheduler); `default` is the family's usual.
SAMPLERS = {"euler": ("euler", "normal"), "euler_a": ("euler_ancestral", "normal"),
            "ddim": ("ddim", "ddim_uniform"), "dpmpp_2m": ("dpmpp_2m", "normal"),
            "dpmpp_2m_karras": ("dpmpp_2m", "karras"), "unipc": ("uni_pc", "normal")}
_SD_DEFAULT = ("euler", "normal")
_FLOW_DEFAULT = ("euler", "simple")
# ModelSamplingAuraFlow's shift in ComfyUI's Qwen-Image and Z-Image examples.
_AURA_SHIFT = {"qwen_image_controlnet": 3.1, "qwen_image_edit": 3.1, "zimage_controlnet": 3.0}
RESULT_PREFIX = "blender_t2i"


def sampler_for(request: GenerateRequest) -> tuple[str, str]:
    """(sampler_name, scheduler) the job's KSampler runs."""
    if request.scheduler in SAMPLERS:
        return SAMPLERS[request.scheduler]
    return _FLOW_DEFAULT if FAMILY_INFO[request.model["family"]].flow_match else _SD_DEFAULT


class _Graph:
    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}

    def add(self, class_type: str, **inputs: Any) -> str:
        node_id = str(len(self.nodes) + 1)
        self.nodes[node_id] = {"class_type": class_type, "inputs": inputs}
        return node_id


def out(node_id: str, index: int = 0) -> Link:
    return [node_id, index]


class _Job:
    """One request's graph under construction, with the pieces every family shares."""

    def __init__(self, request: GenerateRequest, uploads: Uploads, server: ServerInfo):
        self.request, self.uploads, self.server = request, uploads, server
        self.family: str = request.model["family"]
        self.g = _Graph()
        self.mask: Link | None = None
        self.init_pixels: Link | None = None

    def file(self, role: str) -> str:
        reference = self.request.model.get(role)
        if not reference:
            reference = default_reference(self.family, role,
                                          str(self.request.model.get("base", "")))
        return resolve_reference(self.family, role, str(reference), self.server)

    def sized(self, upload: str) -> Link:
        """An uploaded picture at the job's size."""
        image = self.g.add("LoadImage", image=upload)
        return out(self.g.add("ImageScale", image=out(image), upscale_method="bilinear",
                              width=self.request.width, height=self.request.height,
                              crop="disabled"))

    def depth(self) -> Link:
        return self.sized(self.uploads.control)

    def checkpoint(self) -> tuple[Link, Link, Link]:
        """CheckpointLoaderSimple (+ LoraLoader chain, + a VAE file) -> model, clip, vae."""
        loader = self.g.add("CheckpointLoaderSimple", ckpt_name=self.file("base"))
        model, clip, vae = out(loader, 0), out(loader, 1), out(loader, 2)
        for lora in self.request.loras:
            name = resolve_reference(self.family, "lora", lora.path, self.server)
            node = self.g.add("LoraLoader", model=model, clip=clip, lora_name=name,
                              strength_model=lora.weight, strength_clip=lora.weight)
            model, clip = out(node, 0), out(node, 1)
        if self.request.model.get("vae"):
            vae = out(self.g.add("VAELoader", vae_name=self.file("vae")))
        return model, clip, vae

    def diffusion_model(self) -> Link:
        """UNETLoader (+ LoraLoaderModelOnly chain): the split families' model."""
        model = out(self.g.add("UNETLoader", unet_name=self.file("base"),
                               weight_dtype="default"))
        for lora in self.request.loras:
            name = resolve_reference(self.family, "lora", lora.path, self.server)
            model = out(self.g.add("LoraLoaderModelOnly", model=model, lora_name=name,
                                   strength_model=lora.weight))
        return model

    def vae_file(self) -> Link:
        return out(self.g.add("VAELoader", vae_name=self.file("vae")))

    def flux1_clip(self) -> Link:
        return out(self.g.add("DualCLIPLoader", clip_name1=self.file("text_encoder"),
                              clip_name2=self.file("text_encoder_2"), type="flux"))

    def one_clip(self, kind: str) -> Link:
        return out(self.g.add("CLIPLoader", clip_name=self.file("text_encoder"), type=kind))

    def encode(self, clip: Link, text: str) -> Link:
        return out(self.g.add("CLIPTextEncode", text=text, clip=clip))

    def no_negative(self, positive_encoding: Link) -> Link:
        """The negative of a family without one (CFG 1): zeros, as ComfyUI's examples do."""
        return out(self.g.add("ConditioningZeroOut", conditioning=positive_encoding))

    def latent(self, vae: Link, empty: str) -> tuple[Link, float]:
        """(latent, denoise): the init image encoded (with the mask as its noise mask) when the
        job starts from it, else an empty latent of the job's size (`empty` is the node
        class: SD's 4-channel EmptyLatentImage or the 16-channel EmptySD3LatentImage)."""
        request = self.request
        self.load_mask()
        if starts_from_init(self.family, request) and self.uploads.init:
            self.init_pixels = self.sized(self.uploads.init)
            latent = out(self.g.add("VAEEncode", pixels=self.init_pixels, vae=vae))
            if self.mask is not None:
                latent = out(self.g.add("SetLatentNoiseMask", samples=latent, mask=self.mask))
            default = 1.0 if self.mask is not None else 0.75
            return latent, request.strength if request.strength is not None else default
        return out(self.g.add(empty, width=request.width, height=request.height,
                              batch_size=1)), 1.0

    def load_mask(self) -> None:
        if self.request.mask_image and self.uploads.mask and self.mask is None:
            # White = regenerate: the red channel of a grey picture is ComfyUI's mask (1 =
            # denoise) as it is; LoadImageMask would invert only the alpha channel.
            self.mask = out(self.g.add("LoadImageMask", image=self.uploads.mask,
                                       channel="red"))

    def ksampler(self, model: Link, positive: Link, negative: Link, latent: Link,
                 denoise: float, cfg: float) -> Link:
        sampler, scheduler = sampler_for(self.request)
        return out(self.g.add("KSampler", model=model, seed=self.request.seed,
                              steps=self.request.steps, cfg=cfg, sampler_name=sampler,
                              scheduler=scheduler, positive=positive, negative=negative,
                              latent_image=latent, denoise=denoise))

    def save(self, samples: Link, vae: Link) -> str:
        """VAEDecode -> (init pasted back over the kept part) -> SaveImage; its id."""
        image = out(self.g.add("VAEDecode", samples=samples, vae=vae))
        if self.mask is not None and self.init_pixels is not None:
            # As the local backend does: a kept part stays the init picture's pixels (the VAE
            # round trip alters even latents the sampler kept).
            image = out(self.g.add("ImageCompositeMasked", destination=self.init_pixels,
                                   source=image, x=0, y=0, resize_source=False,
                                   mask=self.mask))
        return self.g.add("SaveImage", images=image,
                          filename_prefix=f"{RESULT_PREFIX}/{self.request.id}")

    def references(self, one: bool = False) -> list[str]:
        """The edit families' input pictures: the explicit references, else the render and
        the depth (the render first: it is the picture to edit); `one`: the render, else the
        depth (FLUX.1 Kontext, as on the local backend)."""
        if self.uploads.references:
            return list(self.uploads.references)
        pictures = [u for u in (self.uploads.init, self.uploads.control) if u]
        return pictures[:1] if one else pictures


# --- families ---------------------------------------------------------------------------------


def _sd_controlnet(job: _Job) -> str:
    """SD 1.5 / SDXL checkpoint + depth ControlNet (a Union one set to depth)."""
    request = job.request
    model, clip, vae = job.checkpoint()
    positive = job.encode(clip, request.prompt)
    negative = job.encode(clip, request.negative_prompt)
    control = out(job.g.add("ControlNetLoader", control_net_name=job.file("controlnet")))
    if job.family == "sdxl_controlnet_union":
        control = out(job.g.add("SetUnionControlNetType", control_net=control, type="depth"))
    applied = job.g.add("ControlNetApplyAdvanced", positive=positive, negative=negative,
                        control_net=control, image=job.depth(),
                        strength=request.control_strength, start_percent=0.0,
                        end_percent=1.0)
    latent, denoise = job.latent(vae, "EmptyLatentImage")
    samples = job.ksampler(model, out(applied, 0), out(applied, 1), latent, denoise,
                           request.guidance)
    return job.save(samples, vae)


def _flux_depth(job: _Job) -> str:
    """FLUX.1 Depth: the depth picture's latents concatenated to the model's input
    (InstructPixToPixConditioning), distilled guidance in FluxGuidance, CFG 1."""
    request = job.request
    model, clip, vae = job.diffusion_model(), job.flux1_clip(), job.vae_file()
    encoded = job.encode(clip, request.prompt)
    positive = out(job.g.add("FluxGuidance", conditioning=encoded, guidance=request.guidance))
    conditioned = job.g.add("InstructPixToPixConditioning", positive=positive,
                            negative=job.no_negative(encoded), vae=vae, pixels=job.depth())
    if starts_from_init(job.family, request):  # inpainting (FLUX.1 Depth takes no img2img)
        latent, denoise = job.latent(vae, "EmptySD3LatentImage")
    else:  # its own empty latent, at the depth picture's size: the job's
        latent, denoise = out(conditioned, 2), 1.0
    samples = job.ksampler(model, out(conditioned, 0), out(conditioned, 1), latent, denoise,
                           1.0)
    return job.save(samples, vae)


def _flux_controlnet(job: _Job) -> str:
    """FLUX.1 + a FLUX ControlNet (ControlNetApplyAdvanced with the VAE: it works on latents);
    a Union ControlNet set to depth."""
    request = job.request
    model, clip, vae = job.diffusion_model(), job.flux1_clip(), job.vae_file()
    encoded = job.encode(clip, request.prompt)
    positive = out(job.g.add("FluxGuidance", conditioning=encoded, guidance=request.guidance))
    name = job.file("controlnet")
    control = out(job.g.add("ControlNetLoader", control_net_name=name))
    if "union" in name.lower():
        control = out(job.g.add("SetUnionControlNetType", control_net=control, type="depth"))
    applied = job.g.add("ControlNetApplyAdvanced", positive=positive,
                        negative=job.no_negative(encoded), control_net=control,
                        image=job.depth(), strength=request.control_strength,
                        start_percent=0.0, end_percent=1.0, vae=vae)
    latent, denoise = job.latent(vae, "EmptySD3LatentImage")
    samples = job.ksampler(model, out(applied, 0), out(applied, 1), latent, denoise, 1.0)
    return job.save(samples, vae)


def _flux_kontext(job: _Job) -> str:
    """FLUX.1 Kontext: the reference picture(s) scaled to a Kontext size
    (FluxKontextImageScale), encoded and appended to the conditioning (ReferenceLatent)."""
    request = job.request
    model, clip, vae = job.diffusion_model(), job.flux1_clip(), job.vae_file()
    encoded = job.encode(clip, request.prompt)
    conditioning = encoded
    for upload in job.references(one=True):
        image = job.g.add("LoadImage", image=upload)
        scaled = job.g.add("FluxKontextImageScale", image=out(image))
        latent = job.g.add("VAEEncode", pixels=out(scaled), vae=vae)
        conditioning = out(job.g.add("ReferenceLatent", conditioning=conditioning,
                                     latent=out(latent)))
    positive = out(job.g.add("FluxGuidance", conditioning=conditioning,
                             guidance=request.guidance))
    latent, denoise = job.latent(vae, "EmptySD3LatentImage")
    samples = job.ksampler(model, positive, job.no_negative(encoded), latent, denoise, 1.0)
    return job.save(samples, vae)


def _aura_flow(job: _Job, model: Link) -> Link:
    return out(job.g.add("ModelSamplingAuraFlow", model=model, shift=_AURA_SHIFT[job.family]))


def _qwen_image_controlnet(job: _Job) -> str:
    """Qwen-Image + a ControlNet: DiffSynth's model patch (ModelPatchLoader +
    QwenImageDiffsynthControlnet, which patches the model) or InstantX's Union (a
    controlnet/ file, ControlNetApplyAdvanced with the VAE). True CFG with a negative."""
    request = job.request
    model = _aura_flow(job, job.diffusion_model())
    clip, vae = job.one_clip("qwen_image"), job.vae_file()
    positive = job.encode(clip, request.prompt)
    negative = job.encode(clip, request.negative_prompt)
    name = job.file("controlnet")
    if instantx(str(request.model.get("controlnet", ""))):
        control = job.g.add("ControlNetLoader", control_net_name=name)
        applied = job.g.add("ControlNetApplyAdvanced", positive=positive, negative=negative,
                            control_net=out(control), image=job.depth(),
                            strength=request.control_strength, start_percent=0.0,
                            end_percent=1.0, vae=vae)
        positive, negative = out(applied, 0), out(applied, 1)
    else:
        patch = job.g.add("ModelPatchLoader", name=name)
        model = out(job.g.add("QwenImageDiffsynthControlnet", model=model,
                              model_patch=out(patch), vae=vae, image=job.depth(),
                              strength=request.control_strength))
    latent, denoise = job.latent(vae, "EmptySD3LatentImage")
    samples = job.ksampler(model, positive, negative, latent, denoise, request.guidance)
    return job.save(samples, vae)


def _qwen_image_edit(job: _Job) -> str:
    """Qwen-Image-Edit (2509/2511): up to three input pictures go into the text encoder with
    the instruction (TextEncodeQwenImageEditPlus, which also encodes them as reference
    latents), each scaled to about a megapixel as ComfyUI's example does."""
    request = job.request
    model = _aura_flow(job, job.diffusion_model())
    clip, vae = job.one_clip("qwen_image"), job.vae_file()
    images: dict[str, Link] = {}
    for index, upload in enumerate(job.references()[:3], start=1):
        image = job.g.add("LoadImage", image=upload)
        images[f"image{index}"] = out(job.g.add("ImageScaleToTotalPixels", image=out(image),
                                                upscale_method="lanczos", megapixels=1.0))
    positive = out(job.g.add("TextEncodeQwenImageEditPlus", clip=clip, prompt=request.prompt,
                             vae=vae, **images))
    negative = out(job.g.add("TextEncodeQwenImageEditPlus", clip=clip,
                             prompt=request.negative_prompt, vae=vae, **images))
    latent, denoise = job.latent(vae, "EmptySD3LatentImage")
    samples = job.ksampler(model, positive, negative, latent, denoise, request.guidance)
    return job.save(samples, vae)


def _zimage_controlnet(job: _Job) -> str:
    """Z-Image Turbo + the Fun ControlNet Union (a model patch applied by ZImageFunControlnet,
    with the init picture and mask for the 2.x weights' inpainting); from noise always."""
    request = job.request
    model = _aura_flow(job, job.diffusion_model())
    clip, vae = job.one_clip("lumina2"), job.vae_file()
    encoded = job.encode(clip, request.prompt)
    patch = job.g.add("ModelPatchLoader", name=job.file("controlnet"))
    extra: dict[str, Link] = {}
    job.load_mask()
    if job.mask is not None and job.uploads.init:
        job.init_pixels = job.sized(job.uploads.init)
        extra = {"inpaint_image": job.init_pixels, "mask": job.mask}
    model = out(job.g.add("ZImageFunControlnet", model=model, model_patch=out(patch), vae=vae,
                          strength=request.control_strength, image=job.depth(), **extra))
    latent = out(job.g.add("EmptySD3LatentImage", width=request.width, height=request.height,
                           batch_size=1))
    # Turbo is distilled: guidance 0 (the preset) means no CFG, which is KSampler's 1.
    cfg = request.guidance if request.guidance > 1.0 else 1.0
    negative = (job.encode(clip, request.negative_prompt) if cfg > 1.0
                else job.no_negative(encoded))
    samples = job.ksampler(model, encoded, negative, latent, 1.0, cfg)
    return job.save(samples, vae)


def _flux2(job: _Job) -> str:
    """FLUX.2 (dev / klein): reference pictures as ReferenceLatents, sampled with FLUX.2's
    own schedule (Flux2Scheduler) through SamplerCustomAdvanced, as ComfyUI's example does."""
    request = job.request
    model, clip, vae = job.diffusion_model(), job.one_clip("flux2"), job.vae_file()
    conditioning = job.encode(clip, request.prompt)
    for upload in job.references():
        image = job.g.add("LoadImage", image=upload)
        scaled = job.g.add("ImageScaleToTotalPixels", image=out(image),
                           upscale_method="lanczos", megapixels=1.0)
        latent = job.g.add("VAEEncode", pixels=out(scaled), vae=vae)
        conditioning = out(job.g.add("ReferenceLatent", conditioning=conditioning,
                                     latent=out(latent)))
    positive = out(job.g.add("FluxGuidance", conditioning=conditioning,
                             guidance=request.guidance))
    sampler_name, _ = sampler_for(request)
    samples = job.g.add(
        "SamplerCustomAdvanced",
        noise=out(job.g.add("RandomNoise", noise_seed=request.seed)),
        guider=out(job.g.add("BasicGuider", model=model, conditioning=positive)),
        sampler=out(job.g.add("KSamplerSelect", sampler_name=sampler_name)),
        sigmas=out(job.g.add("Flux2Scheduler", steps=request.steps, width=request.width,
                             height=request.height)),
        latent_image=out(job.g.add("EmptyFlux2LatentImage", width=request.width,
                                   height=request.height, batch_size=1)))
    return job.save(out(samples, 0), vae)


_BUILDERS = {
    "sd15_controlnet": _sd_controlnet, "sdxl_controlnet": _sd_controlnet,
    "sdxl_controlnet_union": _sd_controlnet, "flux_depth": _flux_depth,
    "flux_controlnet": _flux_controlnet, "flux_kontext": _flux_kontext,
    "qwen_image_controlnet": _qwen_image_controlnet, "qwen_image_edit": _qwen_image_edit,
    "zimage_controlnet": _zimage_controlnet, "flux2": _flux2,
}


def build_graph(request: GenerateRequest, uploads: Uploads, server: ServerInfo
                ) -> tuple[dict[str, dict], str]:
    """(API graph, id of the SaveImage node whose images are the result). ValueError names a
    model the server lacks (and the folder to put it in) or a family ComfyUI cannot run."""
    family = request.model.get("family")
    if family in NOT_OFFERED:
        raise ValueError(NOT_OFFERED[family])
    builder = _BUILDERS.get(family)  # type: ignore[arg-type]
    if builder is None:
        raise ValueError(f"unknown model family '{family}'")
    job = _Job(request, uploads, server)
    save = builder(job)
    return job.g.nodes, save
