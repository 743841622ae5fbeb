"""`VideoGLaMMProcessor`: frames + prompts (+ answers and masks for training) -> model inputs.

    inputs = processor(videos=[frames], prompts=["What is the red circle?"], answers=["It is [SEG]."],
                       masks=[m])          # m: bool (num_seg, T, H, W), aligned with frames
    out = model(**inputs)

The processor renders the Phi-3 chat, puts the video marker at the start of the user turn (unless the
prompt already holds it), expands it into `num_visual_tokens` placeholder ids, masks the labels so the loss
covers only the answer and its `<|end|>`, samples frames and applies the three encoder transforms.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from videoglamm.config import VideoGLaMMConfig
from videoglamm.errors import CheckpointError, InputError, ShapeMismatchError, TokenCountError
from videoglamm.processing.frames import sample_frame_indices, subsample
from videoglamm.processing.chat_ids import turn_ids
from videoglamm.processing.tokens import (
    CHAT_TAGS, IGNORE_INDEX, SEG_TOKEN, VIDEO_TOKEN, phrase_token_index, render_prompt,
)
from videoglamm.processing.transforms import clip_transform, internvideo_transform, sam2_transform
from videoglamm.processing.video_io import VideoLike, as_frames

PACKAGED_TOKENIZERS = Path(__file__).resolve().parent.parent / "assets" / "tokenizers"


@dataclass
class EncodedVideo:
    """The encoder views of one video."""

    pixel_values_image: torch.Tensor  # (Te, 3, Si, Si)
    pixel_values_video: torch.Tensor  # (Te, 3, Sv, Sv)
    frame_indices: list[int]  # source frames the encoders saw
    original_size: tuple[int, int]  # (H, W)
    num_frames: int  # frames in the source video


class VideoGLaMMProcessor:
    """Prepares videos and text for `VideoGLaMM`.

    Args:
        config: the model config (sizes, sampling, tokens).
        tokenizer: a tokenizer holding `[SEG]` and the Phi-3 chat tags.
    Encoder frames are sampled as `config.inference.frame_sampling` says unless a call names another rule.
    """

    def __init__(self, config: VideoGLaMMConfig, tokenizer: Any) -> None:
        self.config = config
        self.tokenizer = tokenizer
        seg_id = tokenizer.convert_tokens_to_ids(SEG_TOKEN)
        if seg_id != config.tokens.seg_token_id:
            raise CheckpointError(
                f"tokenizer maps {SEG_TOKEN} to id {seg_id} but the config expects {config.tokens.seg_token_id}; "
                "use the tokenizer saved with the model"
            )
        if len(tokenizer) > config.llm.vocab_size:
            raise CheckpointError(f"tokenizer has {len(tokenizer)} tokens, more than the LLM vocabulary {config.llm.vocab_size}")

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def from_preset(cls, name: str, tokenizer_path: str | os.PathLike | None = None) -> "VideoGLaMMProcessor":
        """The processor of a preset. Tiny presets use the packaged tokenizer; the full preset needs the
        Phi-3 tokenizer with `[SEG]` added (`tokenizer_path`, or a local Hugging Face cache of
        `microsoft/Phi-3-mini-4k-instruct`)."""
        config = VideoGLaMMConfig.from_preset(name)
        return cls(config, load_tokenizer(name, tokenizer_path))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> "VideoGLaMMProcessor":
        path = Path(path)
        if not (path / "config.json").is_file():
            raise CheckpointError(f"{path} has no config.json; is it a folder written by save_pretrained?")
        return cls(VideoGLaMMConfig.from_pretrained(path), load_tokenizer(path))

    @property
    def frame_sampling(self) -> str:
        """The default encoder-frame sampling (`config.inference.frame_sampling`)."""
        return self.config.inference.frame_sampling

    def save_pretrained(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(path)

    # -- video -------------------------------------------------------------------------------------
    def encoder_frame_indices(
        self, num_video_frames: int, frame_sampling: str | None = None,
        frame_indices: Sequence[int] | None = None, num_frames: int | None = None,
    ) -> list[int]:
        """Which source frames the encoders see.

        Args:
            num_video_frames: frames in the video.
            frame_sampling: "uniform", "spread" or "first" (see `sample_frame_indices`; default: the config's).
            frame_indices: explicit indices (their count must equal `num_frames`).
            num_frames: encoder frames (default `sampling.encoder_frames`); a multiple of the segment length.

        Raises:
            InputError: for a count that is not a multiple of the segment length or mismatched indices.
        """
        count = num_frames or self.config.sampling.encoder_frames
        segment = self.config.sampling.segment_frames
        if count % segment:
            raise InputError(f"the number of encoder frames ({count}) must be a multiple of {segment}")
        indices = sample_frame_indices(num_video_frames, count, frame_sampling or self.frame_sampling, frame_indices)
        if len(indices) != count:
            raise InputError(f"the encoders take exactly {count} frames, got {len(indices)} frame indices")
        return indices

    def encode_video(
        self, video: VideoLike, frame_sampling: str | None = None, frame_indices: Sequence[int] | None = None,
        num_frames: int | None = None,
    ) -> EncodedVideo:
        """Sample encoder frames and build the CLIP and InternVideo2 views of one video."""
        frames = as_frames(video)
        return self._encode_frames(frames, frame_sampling, frame_indices, num_frames)

    def encoder_views(self, chosen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (T, H, W, 3) encoder frames -> (CLIP views, InternVideo2 views)."""
        it, vt = self.config.image_tower, self.config.video_tower
        return (clip_transform(chosen, it.image_size, it.mean, it.std),
                internvideo_transform(chosen, vt.image_size, vt.mean, vt.std))

    def _encode_frames(
        self, frames: torch.Tensor, frame_sampling: str | None, frame_indices: Sequence[int] | None,
        num_frames: int | None = None,
    ) -> EncodedVideo:
        indices = self.encoder_frame_indices(frames.shape[0], frame_sampling, frame_indices, num_frames)
        image, video = self.encoder_views(frames[indices])
        return EncodedVideo(
            pixel_values_image=image,
            pixel_values_video=video,
            frame_indices=indices,
            original_size=(int(frames.shape[1]), int(frames.shape[2])),
            num_frames=int(frames.shape[0]),
        )

    def sam_transform(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (T, H, W, 3) -> SAM2 input (T, 3, S, S)."""
        sam = self.config.sam2
        vt = self.config.video_tower  # SAM2 uses ImageNet statistics, like InternVideo2
        return sam2_transform(frames, sam.image_size, vt.mean, vt.std)

    # -- text --------------------------------------------------------------------------------------
    def num_visual_tokens(self, num_frames: int | None = None) -> int:
        cfg = self.config
        return (num_frames or cfg.sampling.encoder_frames) * (cfg.image_tokens_per_frame + cfg.video_tokens_per_frame)

    def _chat_chunks(self, prompt: str) -> tuple[str, str]:
        """The rendered generation prompt before and after the video marker."""
        if not prompt or not prompt.strip():
            raise InputError("the prompt is empty")
        markers = prompt.count(VIDEO_TOKEN)
        if markers > 1:
            raise TokenCountError(f"the prompt holds {markers} {VIDEO_TOKEN} markers; one video takes exactly one")
        _reject_chat_tags("prompt", prompt)
        user = prompt if markers == 1 else f"{VIDEO_TOKEN}\n{prompt}"
        before, after = render_prompt(self.config.tokens.system_prompt, user).split(VIDEO_TOKEN)
        return before, after

    def _placeholder(self, num_frames: int | None) -> list[int]:
        return [self.config.tokens.video_token_id] * self.num_visual_tokens(num_frames)

    def tokenize(
        self, prompt: str, answer: str | None = None, num_frames: int | None = None
    ) -> tuple[list[int], list[int]]:
        """Token ids and labels of one turn; labels are IGNORE_INDEX outside the answer and its `<|end|>`.

        The ids are the official's (`chat_ids.turn_ids`): each side of the video placeholders is tokenized
        on its own with the tokenizer's own special tokens, and an answer is tokenized together with its
        prompt.

        Raises:
            InputError: for an empty prompt, or a prompt or answer holding a chat tag.
            TokenCountError: for more than one video marker, or labels that cannot be placed.
        """
        before, after = self._chat_chunks(prompt)
        if answer is not None:
            _reject_chat_tags("answer", answer)
        return turn_ids(self.tokenizer, before, after, self._placeholder(num_frames), answer)

    def answer_phrase_index(self, labels: Sequence[int]) -> list[int]:
        """Per position of a tokenized turn (its `labels` from `tokenize`): k inside the `<p> ... </p>` phrase
        of the k-th `[SEG]` of the supervised answer, else 0 (what `seg_projector.hidden_source: phrase`
        pools). The answer's ids are read as `generated_phrase_index` reads generated ones."""
        first = next((i for i, t in enumerate(labels) if t != IGNORE_INDEX), len(labels))
        return [0] * first + self.generated_phrase_index(list(labels[first:]))

    def generated_phrase_index(self, ids: Sequence[int]) -> list[int]:
        """`answer_phrase_index` for generated token ids (offsets from decoding growing prefixes)."""
        ends = [len(self.tokenizer.decode(list(ids[:i + 1]), skip_special_tokens=False,
                                          clean_up_tokenization_spaces=False)) for i in range(len(ids))]
        text = self.tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)
        return phrase_token_index(text, list(zip([0, *ends[:-1]], ends)))

    # -- batch -------------------------------------------------------------------------------------
    def __call__(
        self,
        videos: Sequence[VideoLike],
        prompts: Sequence[str],
        answers: Sequence[str] | None = None,
        masks: Sequence[torch.Tensor | None] | None = None,
        frame_sampling: str | None = None,
        mask_valid: Sequence[torch.Tensor | None] | None = None,
    ) -> dict[str, Any]:
        """Build a batch.

        Args:
            videos: one video per sample (path, PIL list or uint8 (T, H, W, 3)).
            prompts: one user prompt per sample.
            answers: training only; one answer per sample with one `[SEG]` per mask.
            masks: training only; bool (num_seg, T, H, W) per sample aligned with its frames (None when the
                answer has no `[SEG]`).
            mask_valid: training only, optional; bool (num_seg, T) per sample (None: every frame annotated).
                False marks frames whose mask is not annotated, which must not be supervised.

        Returns:
            dict with `input_ids`, `attention_mask`, `pixel_values_image` (B, Te, 3, Si, Si),
            `pixel_values_video` (B, Te, 3, Sv, Sv), `frame_indices` (B, Te), `original_sizes` (B, 2), and with
            answers: `labels`; with masks: `sam_pixel_values` (B, Ts, 3, S, S) and `masks` (list of float
            (num_seg, Ts, H, W)); with mask_valid: `mask_valid` (list of bool (num_seg, Ts)); with answers and
            `seg_projector.hidden_source: phrase`: `seg_phrase_index` (B, L), see `answer_phrase_index`.

        Raises:
            InputError / TokenCountError / ShapeMismatchError naming the sample and the mismatch.
        """
        n = len(videos)
        if len(prompts) != n or (answers is not None and len(answers) != n) or (masks is not None and len(masks) != n):
            raise InputError(
                f"batch lengths differ: {n} videos, {len(prompts)} prompts"
                + (f", {len(answers)} answers" if answers is not None else "")
                + (f", {len(masks)} masks" if masks is not None else "")
            )
        if masks is not None and answers is None:
            raise InputError("masks are given without answers; masks supervise the [SEG] tokens of the answers")
        if mask_valid is not None and (masks is None or len(mask_valid) != n):
            raise InputError("mask_valid needs masks and one entry (or None) per sample")
        valid_out: list[torch.Tensor] = []
        ids, labels, image, video, indices, sizes, sam, targets = [], [], [], [], [], [], [], []
        pool_phrases = answers is not None and self.config.seg_projector.hidden_source == "phrase"
        phrase_rows: list[list[int]] = []
        for i in range(n):
            frames = as_frames(videos[i])
            enc = self._encode_frames(frames, frame_sampling, None)
            tok_ids, tok_labels = self.tokenize(prompts[i], answers[i] if answers is not None else None)
            ids.append(tok_ids)
            labels.append(tok_labels)
            if pool_phrases:
                phrase_rows.append(self.answer_phrase_index(tok_labels))
            image.append(enc.pixel_values_image)
            video.append(enc.pixel_values_video)
            indices.append(enc.frame_indices)
            sizes.append(enc.original_size)
            if masks is not None:
                sam_idx = subsample(enc.frame_indices, self.config.sampling.sam_frames, frame_sampling or self.frame_sampling)
                sam.append(self.sam_transform(frames[sam_idx]))
                targets.append(self._check_masks(i, masks[i], answers[i], frames.shape, sam_idx))
                if mask_valid is not None:
                    valid_out.append(self._check_valid(i, mask_valid[i], targets[-1].shape[0], frames.shape[0], sam_idx))
        batch = self.pad(ids, labels if answers is not None else None)
        batch.update(
            pixel_values_image=torch.stack(image),
            pixel_values_video=torch.stack(video),
            frame_indices=torch.tensor(indices, dtype=torch.long),
            original_sizes=torch.tensor(sizes, dtype=torch.long),
        )
        if pool_phrases:
            batch["seg_phrase_index"] = torch.zeros_like(batch["input_ids"])
            for row, values in enumerate(phrase_rows):
                batch["seg_phrase_index"][row, : len(values)] = torch.tensor(values)
        if masks is not None:
            batch["sam_pixel_values"] = torch.stack(sam)
            batch["masks"] = targets
            if mask_valid is not None:
                batch["mask_valid"] = valid_out
        return batch

    @staticmethod
    def _check_valid(i: int, valid: torch.Tensor | None, num_seg: int, t: int, sam_idx: list[int]) -> torch.Tensor:
        if valid is None:
            return torch.ones(num_seg, len(sam_idx), dtype=torch.bool)
        valid = torch.as_tensor(valid, dtype=torch.bool)
        if tuple(valid.shape) != (num_seg, t):
            raise ShapeMismatchError(f"sample {i}: mask_valid has shape {tuple(valid.shape)}, expected "
                                     f"(num_seg, T) = {(num_seg, t)}")
        return valid[:, sam_idx]

    def _check_masks(
        self, i: int, mask: torch.Tensor | None, answer: str, frames_shape: torch.Size, sam_idx: list[int]
    ) -> torch.Tensor:
        t, h, w = frames_shape[:3]
        num_seg = answer.count(SEG_TOKEN)
        if mask is None:
            mask = torch.zeros(0, t, h, w, dtype=torch.bool)
        mask = torch.as_tensor(mask)
        if mask.ndim != 4:
            raise ShapeMismatchError(f"sample {i}: masks must be (num_seg, T, H, W), got shape {tuple(mask.shape)}")
        if mask.shape[0] != num_seg:
            raise TokenCountError(f"sample {i}: the answer has {num_seg} {SEG_TOKEN} but {mask.shape[0]} masks were given")
        if tuple(mask.shape[1:]) != (t, h, w):
            raise ShapeMismatchError(
                f"sample {i}: masks have (T, H, W) = {tuple(mask.shape[1:])} but the video is {(t, h, w)}"
            )
        return mask[:, sam_idx].float()

    def pad(self, ids: list[list[int]], labels: list[list[int]] | None) -> dict[str, torch.Tensor]:
        """Right-pad token ids (and labels) of several sequences: `input_ids`, `attention_mask`, `labels`."""
        length = max(len(x) for x in ids)
        pad_id = self.config.llm.pad_token_id
        input_ids = torch.full((len(ids), length), pad_id, dtype=torch.long)
        attention = torch.zeros((len(ids), length), dtype=torch.long)
        out = {"input_ids": input_ids, "attention_mask": attention}
        if labels is not None:
            out["labels"] = torch.full((len(ids), length), IGNORE_INDEX, dtype=torch.long)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = torch.tensor(seq)
            attention[row, : len(seq)] = 1
            if labels is not None:
                out["labels"][row, : len(seq)] = torch.tensor(labels[row])
        return out

    def decode(self, ids: Sequence[int], keep_special: bool = False) -> str:
        """Token ids -> text without chat tags and special tokens (keeps `[SEG]` and `<p>` tags)."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=not keep_special).strip()


def _reject_chat_tags(what: str, text: str) -> None:
    # The official cuts the conversation at these tags to place the labels; inside a turn they would mis-cut it.
    if found := [tag for tag in CHAT_TAGS if tag in text]:
        raise InputError(f"the {what} holds the chat tag(s) {found}; the processor writes them, "
                         f"remove them from {text!r}")


def load_tokenizer(name_or_path: str | os.PathLike, tokenizer_path: str | os.PathLike | None = None) -> Any:
    """The tokenizer of a preset name or a model folder.

    A folder with a sentencepiece `tokenizer.model` of a Llama-class tokenizer (Phi-3's, as in the release)
    loads as `SlowLlamaTokenizer`, the slow tokenizer the official used (`use_fast=False, legacy=False`):
    transformers' fast one gives other ids (see `videoglamm.processing.slow_tokenizer`). Other folders load
    with `AutoTokenizer`.

    Raises:
        CheckpointError: when no tokenizer can be found locally (nothing is downloaded).
    """
    from transformers import AutoConfig, AutoTokenizer

    from videoglamm.processing.slow_tokenizer import is_slow_llama_folder, load_slow_tokenizer

    # AutoTokenizer reads config.json of a model folder; registering our config type lets it do so quietly.
    AutoConfig.register(VideoGLaMMConfig.model_type, VideoGLaMMConfig, exist_ok=True)
    candidates = [Path(p) for p in (tokenizer_path, name_or_path) if p is not None]
    candidates.append(PACKAGED_TOKENIZERS / str(name_or_path).split("/")[-1])
    if str(name_or_path).startswith(("videoglamm-tiny", "videoglamm-mid")):  # both use the tiny tokenizer
        candidates.append(PACKAGED_TOKENIZERS / "videoglamm-tiny")
    for path in candidates:
        if is_slow_llama_folder(path):
            return load_slow_tokenizer(path)
        if (path / "tokenizer_config.json").is_file():
            return AutoTokenizer.from_pretrained(path)
    if str(name_or_path) == "videoglamm-phi3-mini":
        from huggingface_hub import snapshot_download

        try:
            folder = Path(snapshot_download("microsoft/Phi-3-mini-4k-instruct", local_files_only=True))
        except OSError as err:  # LocalEntryNotFoundError: not in the local cache
            raise CheckpointError(
                "the videoglamm-phi3-mini preset needs the Phi-3 tokenizer: pass tokenizer_path=<folder> or "
                "put microsoft/Phi-3-mini-4k-instruct in the local Hugging Face cache"
            ) from err
        tok = load_slow_tokenizer(folder) if is_slow_llama_folder(folder) else AutoTokenizer.from_pretrained(folder)
        tok.pad_token = tok.unk_token
        tok.add_tokens([SEG_TOKEN])
        return tok
    raise CheckpointError(f"no tokenizer found for {name_or_path!s} (looked in {[str(c) for c in candidates]})")
