"""Prior recommendation: what an expert would try first, before any search.

Each rule reads the model analysis (``autoquant.analysis``) and, when it was measured, the
per-layer sensitivity, and proposes a configuration with a one-sentence reason. The candidates
become the first trials of every study (``enqueue_trial``) and the answer of
``autoquant recommend``, where each is quickly measured for an estimate.
"""

from __future__ import annotations

import dataclasses
import math

from autoquant.engine.budget import Budget
from autoquant.engine.config import QuantConfig
from autoquant.measure.inspect import ModelReport

TARGETS = ("server", "mobile")
#: Below this many multiply-accumulates per example, int8 overheads tend to outweigh its gain.
TINY_MACS = 1_000_000
#: A classifier under this share of the compute is kept in float at throughput: its int8 GEMM
#: saves less than quantizing its input costs (experiments/RETIME.md).
SMALL_CLASSIFIER_SHARE = 0.05
#: From this batch size a deployment is throughput-bound: measured on AVX2 and AVX512 CPUs at
#: batch 64, PT2E int8 beat torch.ao int8 on resnet18, mobilenet_v2 and the digits CNN.
THROUGHPUT_BATCH = 16


@dataclasses.dataclass(frozen=True)
class Candidate:
    config: QuantConfig
    reason: str


def _static(backend: str, keep: tuple[str, ...] = ()) -> QuantConfig:
    mobile = backend == "qnnpack"
    return QuantConfig(
        method="static_int8",
        backend=backend,
        activation_observer="histogram",
        weight_observer="per_channel_minmax",
        qscheme="symmetric" if backend == "onednn" else "affine",
        reduce_range=not mobile and backend != "onednn",
        keep_float=keep,
    )


def prior_candidates(
    report: ModelReport,
    budget: Budget,
    *,
    target: str = "server",
    sensitivity: list[dict] | None = None,
    batch_size: int = 1,
) -> list[Candidate]:
    """Candidates in the order an expert would try them, each with its reason.

    ``batch_size`` is the deployment's (the scenario's): at batches of many examples the
    compiled torchao engine comes first for convolutional models, then static int8 on onednn
    with symmetric weights.
    """
    f = report.features
    mobile = target == "mobile"
    backend = "qnnpack" if mobile else "x86"
    candidates: list[Candidate] = []
    dense = f["linear_share"] + f["recurrent_share"]
    # the layers that lose the most when quantized alone (measured), kept in float
    worst = [s for s in sensitivity or [] if s["drop_points"] > budget.max_drop / 2][:3]
    keep = tuple(s["name"] for s in worst) if f["conv_share"] >= 0.5 else ()
    drops = ", ".join(f"{s['drop_points']:.1f}" for s in worst)
    keep_reason = (
        f"{', '.join(keep)} lose the most when quantized alone ({drops} points): kept in float"
    )
    throughput = batch_size >= THROUGHPUT_BATCH and not mobile
    if (
        f["conv_share"] >= 0.5
        and throughput
        and "x86" in report.methods.get("pt2e_static_int8", [])
    ):
        pt2e = dataclasses.replace(_static("x86"), method="pt2e_static_int8")
        candidates.append(
            Candidate(
                pt2e,
                (
                    f"At {batch_size} examples per call, the same static int8 through "
                    f"torchao's PT2E, compiled by Inductor, ran faster than torch.ao's "
                    f"kernels on resnet18, mobilenet_v2 and a small CNN, on AVX2 and AVX512 "
                    f"CPUs (experiments/TORCHAO.md, TORCHAO-avx512.md)."
                ),
            )
        )
        classifier = report.output_linear
        share = next((x.compute_share for x in report.layers if x.name == classifier), 1.0)
        # a speed refinement of an all-int8 model: not beside layers kept for accuracy
        if classifier and not keep and share < SMALL_CLASSIFIER_SHARE:
            candidates.append(
                Candidate(
                    dataclasses.replace(pt2e, keep_float=(classifier,)),
                    (
                        f"{classifier}, the Linear that runs last ({share:.2%} of the compute), "
                        f"kept in float (PT2E): too small for int8 to pay for quantizing its "
                        f"input, it ran the digits CNN 5 to 6% faster in float and cost resnet18 "
                        f"and mobilenet_v2 nothing at batch 64 (experiments/RETIME.md)."
                    ),
                )
            )
        if keep:
            candidates.append(
                Candidate(dataclasses.replace(pt2e, keep_float=keep), f"{keep_reason} (PT2E).")
            )
    if f["conv_share"] >= 0.5 and throughput and "onednn" in report.methods.get("static_int8", []):
        candidates.append(
            Candidate(
                _static("onednn"),
                (
                    f"At {batch_size} examples per call, static int8 with symmetric weights on "
                    f"onednn ran 4.2x and 4.9x faster than float on resnet18 and mobilenet_v2, "
                    f"where x86 with affine weights reached 3.2x and 2.6x (the benchmark's "
                    f"sweeps at batch 64 on an AVX512 CPU); at one example per call it was "
                    f"slower than x86 and fbgemm."
                ),
            )
        )
    if f["conv_share"] >= 0.5:
        if report.fx_traceable or not mobile:
            candidates.append(
                Candidate(
                    _static(backend),
                    (
                        f"{f['conv_share']:.0%} of the compute is convolution: static int8 with "
                        f"per-channel weights and a histogram observer on {backend} "
                        f"{'(the engine of ARM phones)' if mobile else '(fbgemm/onednn kernels)'} "
                        f"converts it all to int8 kernels."
                    ),
                )
            )
        if not mobile:
            candidates.append(
                Candidate(
                    _static("fbgemm"),
                    (
                        "fbgemm, the other server engine, is sometimes faster than x86 on the same "
                        "static int8 model."
                    ),
                )
            )
    if dense >= 0.5:
        candidates.append(
            Candidate(
                QuantConfig(
                    method="dynamic_int8", backend=backend, weight_observer="per_channel_minmax"
                ),
                f"{dense:.0%} of the compute is in Linear/recurrent layers, which dynamic int8 "
                f"quantizes without calibration (activations quantized at run time).",
            )
        )
    if dense >= 0.5 and not mobile and "x86" in report.methods.get("pt2e_static_int8", []):
        candidates.append(
            Candidate(
                QuantConfig(
                    method="pt2e_static_int8",
                    backend="x86",
                    activation_observer="minmax",
                    reduce_range=False,
                ),
                "Static int8 of every Linear through torchao's PT2E, compiled by Inductor, with "
                "the full 8-bit activation range: on all-MiniLM-L6-v2 at one sentence per call "
                "(2-core AVX2 CPU) it ran 3.1x to 4.5x float within 1.8 points of cosine "
                "similarity, where the default 7-bit range lost 4.8 and dynamic int8 5.0.",
            )
        )
    if keep:
        candidates.append(Candidate(_static(backend, keep), f"{keep_reason}."))
    if report.methods.get("dynamic_fp16") and not mobile and (dense > 0 or not candidates):
        candidates.append(
            Candidate(
                QuantConfig(method="dynamic_fp16", backend="x86"),
                "float16 weights lose almost nothing and halve the size: the fallback when int8 "
                "cannot hold the budget.",
            )
        )
    # ONNX Runtime's candidates lead where they won (experiments/ONNX-native-*.md): at one
    # example per call on every model measured; at 64 on two threads PyTorch's int8 won on
    # MiniLM and the convolutional models, so there they follow
    onnx = [] if mobile else _onnx_runtime(report, keep, keep_reason)
    candidates = candidates + onnx if throughput else onnx + candidates
    macs = math.exp(f["log_macs"])
    if macs < TINY_MACS:
        candidates.insert(
            0,
            Candidate(
                QuantConfig(method="fp32"),
                (
                    f"The model does only {macs / 1e3:.0f}k multiply-accumulates per example: "
                    f"quantizing and dequantizing activations may cost more than int8 "
                    f"saves, so float is a serious candidate."
                ),
            ),
        )
    return candidates


def _onnx_runtime(report: ModelReport, keep: tuple[str, ...], keep_reason: str) -> list[Candidate]:
    """ONNX Runtime's candidates, where the search's space holds its methods and the model
    runs in it (``report.methods``); ``keep`` (why: ``keep_reason``) stay in float."""
    f = report.features
    found = []
    if f["conv_share"] >= 0.5 and "ort_static_int8" in report.methods:
        found.append(
            Candidate(
                QuantConfig(
                    method="ort_static_int8",
                    activation_observer="histogram",
                    weight_observer="per_channel_minmax",
                    reduce_range=False,
                    keep_float=keep,
                ),
                "ONNX Runtime's static int8 (QDQ, Entropy calibration, per-channel weights, full "
                "range) ran the zoo's resnet18 15x eager float at one example per call, where "
                "PyTorch's best reached 8.8x (experiments/ONNX-native-resnet18.md)."
                + (f" {keep_reason}." if keep else ""),
            )
        )
    if f["linear_share"] + f["recurrent_share"] >= 0.5 and "ort_dynamic_int8" in report.methods:
        found.append(
            Candidate(
                QuantConfig(
                    method="ort_dynamic_int8",
                    weight_observer="per_channel_minmax",
                    reduce_range=False,
                ),
                "ONNX Runtime's dynamic int8 of every Linear (per-channel weights, full range): "
                "on all-MiniLM-L6-v2 it ran 4.0x eager float at one sentence per call within "
                "1.8 points of cosine similarity, where its usual recipe (per-tensor weights) "
                "lost 5.7; at 64 sentences on two threads 3.1x (experiments/ONNX-native-"
                "minilm.md, ONNX-native-minilm-bs64.md).",
            )
        )
    if "ort_fp32" in report.methods:
        found.append(
            Candidate(
                QuantConfig(method="ort_fp32"),
                "The float model in ONNX Runtime loses nothing; at one example per call it ran "
                "1.7x eager float on all-MiniLM-L6-v2 and 4.3x on the zoo's resnet18 "
                "(experiments/ONNX-native-*.md).",
            )
        )
    return found


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A candidate quickly measured: a few calibration and validation batches, a short timing."""

    config: QuantConfig
    reason: str
    speedup: float | None
    size_ratio: float | None
    drop: float | None  # in the budget's unit
    error: str | None = None


def estimate(task, candidates: list[Candidate], scenario=None, budget=None) -> list[Estimate]:
    """Measure each candidate quickly on a slice of the data (seconds, not a search); drops
    in ``budget``'s unit (points by default)."""
    from autoquant.engine.budget import Budget
    from autoquant.errors import AutoQuantError
    from autoquant.measure import QUICK_TIMING, SCENARIOS, FloatReference, measure

    budget = budget or Budget()
    reference = FloatReference.of(
        task, scenario or SCENARIOS["bs1-t1"], list(task.validation_data)[:2]
    )
    results = []
    for candidate in candidates:
        quick = dataclasses.replace(candidate.config, calibration_batches=2, qat_epochs=1)
        try:
            metrics = measure(task.build(quick), reference, timing=QUICK_TIMING)
            results.append(
                Estimate(
                    candidate.config,
                    candidate.reason,
                    metrics.speedup,
                    metrics.size_ratio,
                    budget.drop(metrics),
                )
            )
        except (AutoQuantError, RuntimeError) as err:
            results.append(
                Estimate(
                    candidate.config,
                    candidate.reason,
                    None,
                    None,
                    None,
                    f"{type(err).__name__}: {err}",
                )
            )
    return results


def best_estimate(estimates: list[Estimate], budget: Budget) -> Estimate | None:
    """The fastest estimate within budget that is not slower than float."""
    ok = [e for e in estimates if e.speedup is not None and e.drop <= budget.max_drop]
    faster = [e for e in ok if e.speedup >= 1.0 or e.config.method == "fp32"]
    return max(faster or ok, key=lambda e: e.speedup, default=None)
