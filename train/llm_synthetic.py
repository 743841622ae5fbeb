"""Pretrain a from-scratch tiny LLM on the text of a recipe's data (the tiny stand-in for the language
pretraining every released VideoGLaMM starts from).

    python train/llm_synthetic.py --config configs/train/tiny_synthetic.yaml \
        --out runs/llm_synthetic/llm.pt [--steps 4000]

Phi-3 arrives able to read a question and repeat a phrase from it; a 2-layer, 64-wide LLM trained from
scratch inside the full multimodal run does not learn to in its budget (measured on the demo recipe:
after 2,000 steps it copies the colour of "the yellow diamond" but picks the shape at chance, ~0.25),
so nothing in its answer, and nothing its `[SEG]` hidden state could carry, depends on which object
was asked for. This script gives it that ability cheaply: the LLM alone learns the (question, answer)
text of the recipe's datasets (each reader's `text_pair`, with the same templates and answer style),
with the video placeholders filled by random vectors of the scale the recipe's visual adapters produce
at initialisation, so the LLM learns to read past them. It is cheap: a step of 32 text samples took 0.22 s
on one thread (4,000 steps in 864 s beside another job), where the multimodal run needs ~0.45 s for 4 samples.

The LLM weights are written as a state dict (`torch.save`, atomically), which `model.llm_weights` of the
recipe loads. Every `--eval-every` steps the held-out expressions (synthetic seed 1000) are scored
teacher-forced: the share of answers whose every token after the first (the template's opening word)
is the model's top prediction, i.e. answers greedy decoding reproduces, per expression kind.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Sequence

if __name__ == "__main__":
    import _script_path  # noqa: F401  (train/ is sys.path[0]: put the repository root there instead)

import torch
import torch.nn.functional as F

from videoglamm.processing.tokens import IGNORE_INDEX

HELD_OUT_SEED = 1000


class TextBatches:
    """Random (question, answer) pairs of the recipe's readers that have a text-only view, by weight."""

    def __init__(self, readers: list[Any], weights: list[float], seed: int) -> None:
        self.readers, self.weights = readers, weights
        self.rng = random.Random(seed)
        self.draws = 0

    def pairs(self, n: int) -> list[tuple[str, str]]:
        out = []
        for reader in self.rng.choices(self.readers, self.weights, k=n):
            self.draws += 1
            reader.set_epoch(self.draws)  # a fresh template draw each time a record comes round
            out.append(reader.text(self.rng.randrange(len(reader))))
        return out


def encode(processor: Any, pairs: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """Token ids, labels (answers only) and attention mask, right-padded."""
    ids, labels = zip(*(processor.tokenize(q, a) for q, a in pairs))
    return processor.pad(list(ids), list(labels))


def embed(lm: torch.nn.Module, input_ids: torch.Tensor, video_token_id: int, visual_rms: float,
          generator: torch.Generator | None = None) -> torch.Tensor:
    """Token embeddings with each video placeholder replaced by a random vector of RMS `visual_rms`."""
    placeholder = input_ids == video_token_id
    embeds = lm.get_input_embeddings()(input_ids.masked_fill(placeholder, 0))
    noise = torch.randn(embeds.shape, generator=generator) * visual_rms
    return torch.where(placeholder.unsqueeze(-1), noise.to(embeds.dtype), embeds)


def lm_loss(lm: torch.nn.Module, batch: dict[str, torch.Tensor], embeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Answer-token cross-entropy and the (B, L-1) logits' argmax."""
    hidden = lm.model(inputs_embeds=embeds, attention_mask=batch["attention_mask"], use_cache=False).last_hidden_state
    logits = lm.lm_head(hidden)[:, :-1]
    loss = F.cross_entropy(logits.flatten(0, 1).float(), batch["labels"][:, 1:].flatten(), ignore_index=IGNORE_INDEX)
    return loss, logits.argmax(-1)


def held_out_pairs(style: str, videos: int, frames: int, size: tuple[int, int]) -> list[tuple[str, str, str]]:
    """(question, answer, kind) of every expression of held-out synthetic videos."""
    from videoglamm.data.synthetic import generate_video
    from videoglamm.data.templates import rvos_question, seg_answer

    out = []
    for index in range(videos):
        video = generate_video(HELD_OUT_SEED, index, num_frames=frames, size=size)
        for k, exp in enumerate(video.expressions):
            rng = random.Random(f"held-out:{index}:{k}")
            out.append((rvos_question(rng, exp["exp"]), seg_answer(rng, exp["exp"], style), exp["kind"]))
    return out


@torch.no_grad()
def held_out_report(lm: torch.nn.Module, processor: Any, items: list[tuple[str, str, str]], visual_rms: float) -> str:
    """Share of held-out answers reproduced token for token after their first token, per kind."""
    was_training = lm.training
    lm.eval()
    hits: dict[str, list[bool]] = {}
    generator = torch.Generator().manual_seed(HELD_OUT_SEED)
    for start in range(0, len(items), 32):
        chunk = items[start:start + 32]
        batch = encode(processor, [(q, a) for q, a, _ in chunk])
        _, pred = lm_loss(lm, batch, embed(lm, batch["input_ids"], processor.config.tokens.video_token_id,
                                           visual_rms, generator))
        target = batch["labels"][:, 1:]
        for row, (_, _, kind) in enumerate(chunk):
            positions = (target[row] != IGNORE_INDEX).nonzero()[1:, 0]  # skip the template's first answer token
            hits.setdefault(kind, []).append(bool((pred[row, positions] == target[row, positions]).all()))
    lm.train(was_training)
    return ", ".join(f"{kind} {sum(v) / len(v):.2f}" for kind, v in sorted(hits.items()))


def visual_scale(model: Any, frames: int, size: tuple[int, int]) -> float:
    """RMS of the visual tokens the freshly initialised model gives two synthetic videos."""
    from videoglamm.data.synthetic import generate_video

    videos = [generate_video(HELD_OUT_SEED, i, num_frames=frames, size=size).frames for i in range(2)]
    batch = model.processor(videos=videos, prompts=["Describe the video."] * 2)
    with torch.no_grad():
        tokens = model.encode_video(batch["pixel_values_image"], batch["pixel_values_video"])
    return float(tokens.float().pow(2).mean().sqrt())


def save_llm(lm: torch.nn.Module, out: Path) -> None:
    """Write the LLM state dict atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    torch.save({k: v.detach().clone() for k, v in lm.state_dict().items()}, tmp)
    os.replace(tmp, out)


def main(argv: Sequence[str] | None = None) -> int:
    from tqdm import tqdm

    from train.config import load_config
    from train.data import build_reader, ensure_synthetic
    from train.model import build_model
    from train.schedule import build_optimizer, build_scheduler
    from videoglamm.errors import ConfigError

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="the VideoGLaMM recipe whose LLM this pretrains")
    parser.add_argument("--out", default=None, help="state-dict path (default: the recipe's model.llm_weights)")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=None, help="default: the recipe's optim.lr")
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    cfg = load_config(args.config)
    target = args.out or cfg.model.llm_weights
    if not target:
        raise ConfigError("give --out or set model.llm_weights in the recipe")
    if cfg.model.weights is not None or cfg.model.lora or not cfg.model.train_llm:
        raise ConfigError(f"{args.config}: text pretraining is for LLMs trained from scratch (model.train_llm "
                          "true, no model.weights, no LoRA); a recipe on Phi-3 already starts from a pretrained LLM")
    for entry in cfg.data.synthetic:
        ensure_synthetic(entry)
    readers, weights, styles = [], [], []
    for entry in cfg.data.datasets:
        reader = build_reader(entry, cfg.data.seed, cfg.data.max_bad_fraction)
        if hasattr(reader, "text_pair"):
            readers.append(reader)
            weights.append(entry.weight)
            styles.append(getattr(reader, "answer_style", None))
    if not readers:
        raise ConfigError(f"{args.config}: none of data.datasets has a text-only view (text_pair) to pretrain on")
    style = next((s for s in styles if s is not None), "plain")

    model = build_model(dataclasses.replace(cfg.model, llm_weights=None), cfg.train.seed)
    synth = cfg.data.synthetic[0] if cfg.data.synthetic else None
    frames, size = (synth.frames, tuple(synth.size)) if synth else (12, (96, 128))
    rms = visual_scale(model, frames, size)
    lm, processor = model.language_model, model.processor
    lm.requires_grad_(True)
    lm.train()
    params = [p for p in lm.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, args.lr or cfg.optim.lr, tuple(cfg.optim.betas), cfg.optim.weight_decay)
    scheduler = build_scheduler(optimizer, cfg.optim.warmup_steps, args.steps)
    batches = TextBatches(readers, weights, args.seed)
    held_out = held_out_pairs(style, 20, frames, size)
    generator = torch.Generator().manual_seed(args.seed)
    video_token = processor.config.tokens.video_token_id
    print(f"visual placeholder RMS {rms:.4f}; {sum(len(r) for r in readers)} records; held-out "
          f"{len(held_out)} expressions; before training: {held_out_report(lm, processor, held_out, rms)}")
    start = time.perf_counter()
    bar = tqdm(range(1, args.steps + 1), desc="llm pretrain")
    for step in bar:
        batch = encode(processor, batches.pairs(args.batch_size))
        loss, _ = lm_loss(lm, batch, embed(lm, batch["input_ids"], video_token, rms, generator))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
        optimizer.step()
        scheduler.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if step % args.eval_every == 0 or step == args.steps:
            tqdm.write(f"step {step} ({time.perf_counter() - start:.0f} s): loss {loss.item():.3f}; held-out "
                       f"answers reproduced: {held_out_report(lm, processor, held_out, rms)}")
    save_llm(lm, Path(target))
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    from videoglamm.cli.entry import run_script

    sys.exit(run_script("llm_synthetic.py", main))
