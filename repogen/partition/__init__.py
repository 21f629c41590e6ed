"""Partitioned deployment: TensorRT regions for what converts, Python-backend remainder models for the rest,
joined by a Triton ensemble under the model's own name; and the ``--target numpy`` CPU stand-in for plans.

* :mod:`repogen.partition.regions`: the region description (plain JSON data) and how a region's sub-graph
  is cut out of the cleaned graph, the same way at build time and inside the served model.
* :mod:`repogen.partition.runtime`: what a generated ``model.py`` runs: the NumPy TensorRT backend on a
  region's network (stand-in for a plan), or Paddle itself, op by op, on a remainder region.
* :mod:`repogen.partition.plan`: which op goes where and why (converters, TensorRT layer limits at the
  profile's max shapes), regions and the stable names of the tensors between them.
* :mod:`repogen.partition.ensemble`: the composing models' and the ensemble's configs, checked.

docs/partitioning.md has the decisions and a picture of the generated ensemble.
"""
