"""A sentence-transformers model run by ONNX Runtime with int8 weights: about 2.2x the fp32
model's texts per second on CPU, with vectors at cosine 0.995 on average to the fp32 model's
(0.989 at worst on bench/serving.py's texts; tests/embeddings holds 0.99 and 0.985).

The ONNX graph is exported from the model's own files on disk (the packaged weights), once,
then quantised with dynamic int8 quantisation (weights int8, activations quantised per batch
at run time); both files are kept in `cache_dir` under the model's digest, so a process
that finds them loads in a second, and nothing is ever downloaded. Pooling (the mean over
the attention mask) and L2 normalisation run in numpy, as sentence-transformers does them
for this model family.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embeddings.encoder import Vectors, normalise
from embeddings.sentence import model_path


def _digest(path: Path) -> str:
    """Of the files that decide the vectors: weights, config, tokenizer."""
    sha = hashlib.sha256()
    for name in ("model.safetensors", "config.json", "tokenizer.json", "sentence_bert_config.json"):
        file = path / name
        if file.exists():
            sha.update(name.encode())
            sha.update(str(file.stat().st_size).encode())
            with file.open("rb") as handle:
                sha.update(handle.read(1 << 20))  # the header and first weights: enough to tell
    return sha.hexdigest()[:16]


# Bumped whenever export() makes a different graph, so that an older export is not reused.
RECIPE = 2
# The feed-forward down-projections of this many lowest layers stay fp32. Their inputs (GELU
# outputs) quantise worst, and the lowest layers' errors travel through every layer above:
# on bench/serving.py's texts, keeping layers 0 and 1 fp32 lifts the worst cosine to the
# fp32 vectors from 0.981 to 0.990 for 8% of the speed; keeping all six, to 0.991 for 25%.
FP32_DOWN_PROJECTIONS = 2
# Texts per model call. Dynamic quantisation scales each batch's activations by its widest
# value, and a small batch stays in cache: 32 was both faster (540/s against 450/s at 128)
# and closer to fp32 than larger batches.
BATCH = 32


def _down_projections(graph: Any, intermediate_size: int) -> list[str]:
    """The MatMul nodes of the feed-forward down-projections (weights intermediate x hidden),
    lowest layer first (ONNX keeps nodes in topological order)."""
    shapes = {init.name: tuple(init.dims) for init in graph.initializer}
    return [
        node.name
        for node in graph.node
        if node.op_type == "MatMul"
        and len(shapes.get(node.input[1], ())) == 2
        and shapes[node.input[1]][0] == intermediate_size
    ]


def export(source: Path, target: Path) -> Path:
    """The int8 ONNX model of the transformer at `source`, written under `target`."""
    target.mkdir(parents=True, exist_ok=True)
    quantised = target / f"model-int8-r{RECIPE}.onnx"
    if quantised.exists():
        return quantised
    # Only an export needs torch: a process that finds the file never imports it.
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    transformer = AutoModel.from_pretrained(str(source)).eval()

    class Hidden(torch.nn.Module):
        """The transformer by keyword, its last hidden state out: the graph to export."""

        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, ids: Any, mask: Any, types: Any) -> Any:
            out = self.transformer(input_ids=ids, attention_mask=mask, token_type_ids=types)
            return out.last_hidden_state

    model = Hidden().eval()
    tokens = torch.ones((2, 16), dtype=torch.long)
    plain = target / f"model-fp32.{os.getpid()}.onnx"
    axes = {0: "batch", 1: "tokens"}
    # The TorchScript exporter warns that it is the legacy one, and the tracer about the
    # model's Python branches (fixed shapes it does not depend on): export-time noise.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (tokens, tokens, torch.zeros_like(tokens)),
            str(plain),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes={
                "input_ids": axes,
                "attention_mask": axes,
                "token_type_ids": axes,
                "last_hidden_state": axes,
            },
            opset_version=17,
            dynamo=False,
        )
    partial = target / f"model-int8.{os.getpid()}.onnx"
    down = _down_projections(onnx.load(str(plain)).graph, int(transformer.config.intermediate_size))
    if len(down) != transformer.config.num_hidden_layers:
        # An export that holds these weights otherwise would leave every layer int8, silently.
        raise RuntimeError(f"found {len(down)} down-projections in the exported graph")
    # Per output channel, the linear layers' weights only: per-tensor scales (or quantising
    # the embedding lookup) cost several points of cosine to the fp32 vectors.
    quantize_dynamic(
        str(plain),
        str(partial),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
        nodes_to_exclude=down[:FP32_DOWN_PROJECTIONS],
    )
    plain.unlink()
    partial.replace(quantised)  # atomic: a process exporting alongside finds one or none
    return quantised


def _max_tokens(path: Path) -> int:
    """The model's own input limit, as sentence-transformers applies it."""
    config = path / "sentence_bert_config.json"
    if not config.exists():
        return 256
    return int(json.loads(config.read_text()).get("max_seq_length", 256))


class OnnxEncoder:
    """Loads (exporting first, where no export is kept) on first use, thread-safely."""

    def __init__(
        self, name: str, cache_dir: Path, batch_size: int = BATCH, threads: int = 0
    ) -> None:
        self._name = name
        self._path = model_path(name)
        self._cache = Path(cache_dir) / f"{Path(name).name}-{_digest(self._path)}"
        self._batch_size = min(batch_size, BATCH)
        self._threads = threads
        self._loaded: tuple[Any, Any, int] | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        # The fp32 model's name: its vectors are that model's within cosine 0.99, so
        # versions and stored vectors of either runtime mix.
        return self._name

    @property
    def dimension(self) -> int:
        config = json.loads((self._path / "config.json").read_text())
        return int(config["hidden_size"])

    def _load(self) -> tuple[Any, Any, int]:
        with self._lock:
            if self._loaded is None:
                import onnxruntime
                from tokenizers import Tokenizer

                graph = export(self._path, self._cache)
                options = onnxruntime.SessionOptions()
                options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
                # Threads that spin between operators take the cores from any other worker
                # on the machine: two spinning workers on 2 cores embedded 367 texts/s in
                # all, against 508/s for one alone; without spinning, 526/s and 470/s.
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                options.intra_op_num_threads = self._threads
                session = onnxruntime.InferenceSession(
                    str(graph), options, providers=["CPUExecutionProvider"]
                )
                tokenizer = Tokenizer.from_file(str(self._path / "tokenizer.json"))
                limit = _max_tokens(self._path)
                tokenizer.enable_truncation(max_length=limit)
                # The packaged tokenizer pads every text to 128 tokens; each batch is padded
                # below to its own longest text instead (4x less work on short texts).
                tokenizer.no_padding()
                self._loaded = (session, tokenizer, limit)
            return self._loaded

    def encode(self, texts: Sequence[str]) -> Vectors:
        session, tokenizer, _ = self._load()
        dimension = self.dimension
        if not texts:
            return np.zeros((0, dimension), dtype=np.float32)
        # Batches of similar lengths pad least.
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), dimension), dtype=np.float32)
        for start in range(0, len(texts), self._batch_size):
            picked = order[start : start + self._batch_size]
            encoded = tokenizer.encode_batch([texts[n] for n in picked])
            width = max(len(e.ids) for e in encoded)
            ids = np.zeros((len(encoded), width), dtype=np.int64)
            mask = np.zeros((len(encoded), width), dtype=np.int64)
            for row, e in enumerate(encoded):
                ids[row, : len(e.ids)] = e.ids
                mask[row, : len(e.ids)] = e.attention_mask
            (hidden,) = session.run(
                ["last_hidden_state"],
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            out[picked] = pooled
        return normalise(out)
