"""The names inside a Triton model repository that repogen writes and reads, spelled once."""

from __future__ import annotations

#: Triton's model configuration, beside the version folders
CONFIG = "config.pbtxt"
#: repogen's record of a model folder: what it was built from, what it is, and every file repogen wrote there
MANIFEST = "repogen.json"
#: a TensorRT plan's file in the version folder (Triton's default_model_filename for the TensorRT backend)
PLAN_FILE = "model.plan"
#: a Python-backend model's file in the version folder
MODEL_PY = "model.py"
#: names a model folder may not give a labels file (they are the files above)
RESERVED = frozenset({CONFIG, MANIFEST})

#: what a model folder is in a build (repogen.json "role"): the model a user asked for, the parts of a
#: partitioned model, the pipeline stages around a model, and systems built from several models
ROLES = ("model", "part", "pre", "post", "pipeline", "system")
