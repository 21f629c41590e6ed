"""A local S3 server for tests and demos: ``moto_server`` (PyPI ``moto[server]``) on 127.0.0.1, with
request signing checked, so that wrong credentials fail the way they do on a real store.

moto only checks signatures when ``INITIAL_NO_AUTH_ACTION_COUNT`` is set; the first actions (creating an
IAM user with full access and its key) run unauthenticated, every later request must be signed with that
key. The server runs in its own process group and dies with its parent.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from repogen.errors import ServerError

REGION = "us-east-1"
_BOOTSTRAP_ACTIONS = 4  # create_policy, create_user, attach_user_policy, create_access_key
_ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@dataclass
class LocalS3:
    endpoint_url: str
    access_key: str
    secret_key: str
    proc: subprocess.Popen
    log_path: Path
    region: str = REGION
    env: dict[str, str] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return int(self.endpoint_url.rsplit(":", 1)[1])

    def credentials_env(self) -> dict[str, str]:
        """What a process (repogen, tritonserver) needs to use this store."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": self.region, "AWS_ENDPOINT_URL": self.endpoint_url}

    def client(self):
        import boto3

        return boto3.session.Session().client("s3", endpoint_url=self.endpoint_url, region_name=self.region,
                                                aws_access_key_id=self.access_key,
                                                aws_secret_access_key=self.secret_key)

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)


def _moto_server() -> str:
    exe = Path(sys.executable).parent / "moto_server"
    if exe.is_file():
        return str(exe)
    found = shutil.which("moto_server")
    if not found:
        raise ServerError("moto_server not found: pip install 'moto[server]'")
    return found


@contextlib.contextmanager
def local_s3(ready_timeout: float = 30.0) -> Iterator[LocalS3]:
    from repogen.harness.server import _die_with_parent, free_port, kill_process_group

    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="repogen-s3-"))
    log_path = workdir / "moto_server.log"
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(_BOOTSTRAP_ACTIONS))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([_moto_server(), "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True, preexec_fn=_die_with_parent)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise ServerError(f"moto_server exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                # the moto dashboard path costs no auth action
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise ServerError(f"moto_server on {url} not up after {ready_timeout:.0f} s")
                time.sleep(0.1)
        access, secret = _bootstrap(url)
        yield LocalS3(url, access, secret, proc, log_path)
    finally:
        kill_process_group(proc, grace=3)
        shutil.rmtree(workdir, ignore_errors=True)


def _bootstrap(url: str) -> tuple[str, str]:
    import boto3

    iam = boto3.session.Session().client("iam", endpoint_url=url, region_name=REGION,
                                         aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    arn = iam.create_policy(PolicyName="repogen-admin", PolicyDocument=json.dumps(_ADMIN_POLICY))["Policy"]["Arn"]
    iam.create_user(UserName="repogen")
    iam.attach_user_policy(UserName="repogen", PolicyArn=arn)
    key = iam.create_access_key(UserName="repogen")["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]
