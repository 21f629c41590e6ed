"""Model repositories on object storage (S3 and S3-compatible stores).

- :mod:`repogen.storage.uri`: ``s3://bucket/prefix`` URIs, with the endpoint and Triton's path form;
- :mod:`repogen.storage.client`: boto3 clients that fail fast, errors in plain words naming the URI;
- :mod:`repogen.storage.publish`: upload in an order a polling Triton can watch safely, verify, prune;
- :mod:`repogen.storage.download`: fetch published models back (the validation harness's reference);
"""
