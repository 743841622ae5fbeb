"""Model cards: the README.md that `save_pretrained` / `push_to_hub` write next to the weights.

A card names what the model is, its licence, where its weights came from (converted from which files, or
trained by which recipe), the evaluation numbers known for it and the frame sampling behind them. The
YAML front matter is the Hugging Face one (`huggingface_hub.ModelCardData`: license, library_name,
pipeline_tag, base_model, tags, model-index); the structured facts are also kept under its `videoglamm`
key, so `from_pretrained` reads them back (`read_card`) and a later save carries them on.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CARD_FILE = "README.md"
LIBRARY_LICENSE = "apache-2.0"


@dataclass
class EvalEntry:
    """One evaluation number and how it was measured.

    Args:
        benchmark: e.g. "mevis-valid-u", "synthetic-shapes".
        metric: e.g. "J&F".
        value: the number (fractions in [0, 1] for J&F-style metrics, as the scorers write them).
        split, protocol, subset: what was scored ("valid_u", "mevis", "appearance expressions").
        frame_sampling: the sampling the run used (the result JSON's `frame_sampling`); None: the model's
            `config.inference` at save time.
        num_items: videos / expressions scored.
        source: the command or result file the number comes from.
    """

    benchmark: str
    metric: str
    value: float
    split: str | None = None
    protocol: str | None = None
    subset: str | None = None
    frame_sampling: dict[str, Any] | None = None
    num_items: int | None = None
    source: str | None = None

    @classmethod
    def from_result_json(cls, path: str | os.PathLike) -> list["EvalEntry"]:
        """One entry per metric of an eval runner's `result.json` (`eval/rvos.py`, `gcg.py`, `vg.py`).

        Raises:
            CheckpointError: the file has no `metrics` section (the run was not scored).
        """
        from videoglamm.errors import CheckpointError

        data = json.loads(Path(path).read_text())
        if not isinstance(data.get("metrics"), dict) or not data["metrics"]:
            raise CheckpointError(f"{path} has no 'metrics': score the run first (see `videoglamm score`)")
        return [cls(benchmark=data.get("benchmark", "unknown"), metric=name, value=float(value),
                    split=data.get("split"), protocol=data.get("protocol"),
                    frame_sampling=data.get("frame_sampling"), num_items=data.get("num_items"),
                    source=str(path))
                for name, value in data["metrics"].items() if isinstance(value, (int, float))]


@dataclass
class CardInfo:
    """Where a model's weights came from, under which licence, and what is known of its quality.

    Args:
        origin: "converted", "trained", "random" (a preset, no weights) or "unknown".
        summary: one or two sentences of provenance.
        sources: the files the weights came from ({"file", "bytes"} and, from the hub, "repo", "revision").
        base_model: hub ids the weights derive from (front matter `base_model`).
        license, license_name, license_link: front matter licence fields (`license: other` needs a name).
        eval_results: the known numbers.
        recipe: the training recipe (for trained weights), written out in the card.
    """

    origin: str
    summary: str
    sources: list[dict[str, Any]] = field(default_factory=list)
    base_model: list[str] = field(default_factory=list)
    license: str = LIBRARY_LICENSE
    license_name: str | None = None
    license_link: str | None = None
    eval_results: list[EvalEntry] = field(default_factory=list)
    recipe: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CardInfo":
        data = dict(data)
        data["eval_results"] = [EvalEntry(**e) for e in data.get("eval_results") or []]
        return cls(**data)


def unknown_origin(folder: str | os.PathLike) -> CardInfo:
    """The card of a folder that carries none (written before model cards, or by hand)."""
    return CardInfo(origin="unknown", summary=f"Loaded from {Path(folder).name}, which had no model card: "
                                              "the origin of these weights was not recorded.")


def random_init(preset: str) -> CardInfo:
    """The card of a preset built without weights."""
    return CardInfo(origin="random", summary=f"The {preset} architecture with RANDOM weights (no training, no "
                                             "conversion): useful for tests and shapes only.")


def trained_from(checkpoint: str | os.PathLike, state: dict[str, Any]) -> CardInfo:
    """The card of weights exported from a training checkpoint (`state`: its trainer_state.json)."""
    recipe = state["recipe"]
    model = recipe.get("model", {})
    start = model.get("weights") or f"a fresh {model.get('preset', 'videoglamm')} model"
    datasets = [d.get("name") or d.get("reader", "?") for d in recipe.get("data", {}).get("datasets", [])]
    steps = f" for {state['step']} steps" if "step" in state else ""
    return CardInfo(origin="trained", recipe=recipe, summary=(
        f"Trained by videoglamm from {start} on {', '.join(datasets) or 'the recipe data'}{steps} (recipe "
        f"below), exported from the training checkpoint {Path(checkpoint).name} with `videoglamm export`."))


def read_card(folder: str | os.PathLike) -> CardInfo | None:
    """The `CardInfo` stored in `folder/README.md` by `write_card`, or None when there is none."""
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        return None
    from huggingface_hub import ModelCard

    stored = ModelCard.load(path).data.to_dict().get("videoglamm")
    return CardInfo.from_dict(stored) if isinstance(stored, dict) else None


def file_sources(paths: list[Path], root: Path | None = None) -> list[dict[str, Any]]:
    """`CardInfo.sources` entries for files: name (relative to `root` when given) and size."""
    return [{"file": p.relative_to(root).as_posix() if root else p.name, "bytes": p.stat().st_size}
            for p in paths]


def _sampling_text(sampling: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sampling.items())


def write_card(folder: Path, *, title: str, description: str, pipeline_tag: str, tags: list[str],
               info: CardInfo, inference: dict[str, Any], usage: str) -> None:
    """Write `folder/README.md` (front matter + body) for a model; `inference` is its `config.inference`."""
    from huggingface_hub import EvalResult, ModelCardData

    results = [EvalResult(task_type="video-object-segmentation" if pipeline_tag == "mask-generation"
                          else pipeline_tag, dataset_type=e.benchmark, dataset_name=e.benchmark,
                          dataset_split=e.split, metric_type=e.metric, metric_name=e.metric,
                          metric_value=e.value, metric_config=e.subset)
               for e in info.eval_results]
    data = ModelCardData(
        license=info.license, license_name=info.license_name, license_link=info.license_link,
        library_name="videoglamm", pipeline_tag=pipeline_tag, base_model=info.base_model or None, tags=tags,
        model_name=title, eval_results=results or None, videoglamm=info.to_dict())
    lines = [f"---\n{data.to_yaml()}\n---", f"# {title}", "", description, "", "## Provenance", "", info.summary]
    if info.sources:
        lines += [""] + [f"- `{s['file']}` ({s['bytes']:,} bytes)"
                         + (f" from `{s['repo']}@{s['revision']}`" if s.get("repo") else "") for s in info.sources]
    if info.recipe is not None:
        import yaml

        lines += ["", "Training recipe:", "", "```yaml", yaml.safe_dump(info.recipe, sort_keys=False).rstrip(), "```"]
    lines += ["", "## Licence", ""]
    if info.license == "other":
        lines.append(f"{info.license_name}" + (f" (see {info.license_link})" if info.license_link else ""))
    else:
        lines.append(f"`{info.license}`.")
    lines += ["", "## Evaluation", ""]
    if info.eval_results:
        lines += ["| benchmark | split | subset | protocol | metric | value | items | frame sampling |",
                  "|---|---|---|---|---|---|---|---|"]
        for e in info.eval_results:
            sampling = _sampling_text(e.frame_sampling) if e.frame_sampling else "config.inference (below)"
            lines.append(f"| {e.benchmark} | {e.split or ''} | {e.subset or ''} | {e.protocol or ''} | {e.metric} "
                         f"| {e.value:.3f} | {e.num_items or ''} | {sampling} |")
        sources = sorted({e.source for e in info.eval_results if e.source})
        if sources:
            lines += ["", "Measured by: " + "; ".join(f"`{s}`" for s in sources) + "."]
    else:
        lines.append("No evaluation numbers are recorded for these weights.")
    lines += ["", "## Inference defaults (`config.inference`)", "",
              "What a plain `predict()` does; every field can be overridden per call:", ""]
    lines += [f"- `{k}`: {v!r}" for k, v in inference.items()]
    lines += ["", "## Use", "", "```python", usage, "```", ""]
    tmp = folder / f".{CARD_FILE}.tmp"
    tmp.write_text("\n".join(lines))
    os.replace(tmp, folder / CARD_FILE)


# ------------------------------------------------------------------------------------ per model


def videoglamm_card(folder: Path, config: Any, num_weights: int, info: CardInfo, title: str | None = None) -> None:
    """The card of a VideoGLaMM folder (`config`: its `VideoGLaMMConfig`; `title`: default the folder name)."""
    import dataclasses

    title = title or folder.name

    llm, sam2 = config.llm, config.sam2
    description = (
        "VideoGLaMM (CVPR 2025, arXiv 2411.04923; github.com/mbzuai-oryx/VideoGLaMM): "
        "CLIP ViT-L/14-336 on frames and InternVideo2 on 4-frame segments feed V->L adapters into a Phi-3 "
        "LLM; every `[SEG]` token it writes is projected into a SAM2 prompt, and SAM2 decodes and tracks "
        "that object's mask through the video. It answers grounded conversation (GCG), visual grounding "
        "and referring video object segmentation.\n\n"
        f"This checkpoint: preset `{config.preset}`, {num_weights:,} weights (LLM {llm.num_hidden_layers} "
        f"layers x {llm.hidden_size}, vocabulary {llm.vocab_size}, `[SEG]` id {config.tokens.seg_token_id}; "
        f"SAM2 `{sam2.variant}` at {sam2.image_size} px; {config.sampling.encoder_frames} encoder frames). "
        "Written by the `videoglamm` library, which loads it strictly.")
    inference = dataclasses.asdict(config.inference)
    if inference.get("num_frames") is None:
        inference["num_frames"] = f"None (sampling.encoder_frames = {config.sampling.encoder_frames})"
    write_card(folder, title=title, description=description, pipeline_tag="video-text-to-text",
               tags=["videoglamm", "video-grounding", "referring-video-object-segmentation", "sam2", "phi3"],
               info=info, inference=inference,
               usage=("from videoglamm import VideoGLaMM\n\n"
                      f'model = VideoGLaMM.from_pretrained("{title}").eval()  # a folder or a hub id\n'
                      'result = model.predict("video.mp4", "What is the dog doing? Please respond with '
                      'segmentation masks.")'))


def samwise_card(folder: Path, config: Any, num_weights: int, info: CardInfo, title: str | None = None) -> None:
    """The card of a SAMWISE folder (`config`: its `SAMWISEConfig`; `title`: default the folder name)."""
    import dataclasses

    title = title or folder.name

    description = (
        "SAMWISE (Cuttano et al., CVPR 2025, arXiv 2411.17646; github.com/ClaudiaCuttano/SAMWISE): a frozen "
        "SAM2 and a frozen RoBERTa joined by small cross-modal temporal adapters, with a conditional memory "
        "encoder; streaming text-driven video object segmentation.\n\n"
        f"This checkpoint: preset `{config.preset}`, {num_weights:,} weights (SAM2 `{config.sam2.variant}` "
        f"at {config.sam2.image_size} px, text encoder {config.text.num_layers} layers x "
        f"{config.text.hidden_size}). Written by the `videoglamm` library, which loads it strictly.")
    write_card(folder, title=title, description=description, pipeline_tag="mask-generation",
               tags=["videoglamm", "samwise", "referring-video-object-segmentation", "sam2", "roberta"],
               info=info, inference=dataclasses.asdict(config.inference),
               usage=("from videoglamm.samwise import SAMWISE\n\n"
                      f'model = SAMWISE.from_pretrained("{title}").eval()  # a folder, a hub id or a .pth\n'
                      'results = model.predict("video.mp4", ["the dog jumping"])'))
