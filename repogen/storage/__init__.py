"""Model repositories on object storage (S3 and S3-compatible stores).

- :mod:`repogen.storage.uri`: ``s3://bucket/prefix`` URIs, with the endpoint and Triton's path form;
- :mod:`repogen.storage.client`: boto3 clients that fail fast, errors in plain words naming the URI;
- :mod:`repogen.storage.publish`: plan and check a publish, verify, prune, repair;
- :mod:`repogen.storage.transaction`: one model's publish as a transaction a killed process cannot break
  (staged beside the repository, config pinned, copied in, config last; leftovers undone or finished);
- :mod:`repogen.storage.download`: fetch published models back (the validation harness's reference);

Temp folders and lock files that tell a live process from a dead one are :mod:`repogen.locks` (shared with
the build's staging folders).
"""
