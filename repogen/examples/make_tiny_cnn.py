"""Regenerate the bundled example model: ``python -m repogen.examples.make_tiny_cnn``.

A small CIFAR-sized classifier (conv/bn/relu/pool/linear/softmax) saved in the Paddle 2.x format
(``.pdmodel`` + ``.pdiparams``). The 2.x format needs the legacy program IR, so the flag is set before
paddle is imported. Weights come from a fixed seed; BN statistics are randomised so that folding them
is actually exercised.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ["FLAGS_enable_pir_api"] = "0"

import numpy as np  # noqa: E402

from repogen.extras import require  # noqa: E402

HERE = Path(__file__).resolve().parent / "tiny_cnn"
PREFIX = HERE / "inference"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def main(out_prefix: Path = PREFIX) -> None:
    paddle = require("paddle", extra="paddle", for_what="regenerating the bundled example")

    paddle.enable_static()
    paddle.seed(0)
    rng = np.random.default_rng(0)
    main_prog, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main_prog, startup):
        image = paddle.static.data("image", [-1, 3, 32, 32], "float32")
        x = image
        norms = []
        for cin, cout in ((3, 8), (8, 16)):
            x = paddle.nn.Conv2D(cin, cout, 3, padding=1)(x)
            norms.append(paddle.nn.BatchNorm2D(cout))
            x = norms[-1](x)
            x = paddle.nn.functional.relu(x)
            x = paddle.nn.functional.max_pool2d(x, 2)
        x = paddle.nn.functional.adaptive_avg_pool2d(x, 1)
        x = paddle.flatten(x, 1)
        logits = paddle.nn.Linear(16, len(CLASSES))(x)
        probs = paddle.nn.functional.softmax(logits)
    main_prog.global_block()._rename_var(probs.name, "probs")
    probs = main_prog.global_block().var("probs")

    exe = paddle.static.Executor(paddle.CPUPlace())
    exe.run(startup)
    scope = paddle.static.global_scope()
    means = {bn._mean.name for bn in norms}
    variances = {bn._variance.name for bn in norms}
    for var in main_prog.list_vars():
        if not var.persistable or var.name in ("feed", "fetch"):
            continue
        tensor = scope.find_var(var.name).get_tensor()
        shape = np.array(tensor).shape
        if var.name in variances:
            value = rng.uniform(0.5, 1.5, shape)
        elif var.name in means:
            value = rng.normal(0, 0.1, shape)
        else:
            value = rng.normal(0, 0.3, shape)
        tensor.set(value.astype(np.float32), paddle.CPUPlace())

    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    paddle.static.save_inference_model(str(out_prefix), [image], [probs], exe, program=main_prog)
    (out_prefix.parent / "labels.txt").write_text("\n".join(CLASSES) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else PREFIX)
