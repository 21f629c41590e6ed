"""Object storage as a model repository: URIs, publish order and verification, prune, bad input.

Against a real local S3 server (moto_server with signed requests, started per module on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import pytest

from repogen.cli import main
from repogen.errors import RepogenError
from repogen.harness.server import free_port
from repogen.storage import client as s3c
from repogen.storage import publish as pub
from repogen.storage.download import download
from repogen.storage.uri import S3URI, StorageError, parse
from tests.support.s3_fixtures import objects, sample_copy

pytestmark = pytest.mark.timeout(180)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- URIs ------------------------------------------------------------------------------------------------------

def test_uri_forms(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    u = parse("s3://models/team/prod/")
    assert (u.bucket, u.prefix, u.endpoint_url) == ("models", "team/prod", None)
    assert u.triton_path() == "s3://models/team/prod"
    u = parse("s3://models/p", "http://127.0.0.1:9000/")
    assert u.triton_path() == "s3://http://127.0.0.1:9000/models/p"
    # Triton's own form round-trips, and the endpoint defaults its port
    assert parse("s3://http://10.0.0.5:9000/models/a/b") == S3URI("models", "a/b", "http://10.0.0.5:9000")
    assert parse("s3://m-1/x", "https://store.example").triton_path() == "s3://https://store.example:443/m-1/x"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:7000")
    assert parse("s3://models").endpoint_url == "http://127.0.0.1:7000"
    assert parse("s3://models").key("m", "1", "model.py") == "m/1/model.py"


@pytest.mark.parametrize("text, words", [
    ("s3:/models/x", "not a repository URI"),
    ("S3://models/x", "lowercase"),
    ("s4://models/x", "unsupported scheme s4://"),
    ("s3a://models/x", "did you mean s3://"),
    ("s3://Models/x", "'Models' is not a valid bucket name"),
    ("s3://my_models/x", "'my_models' is not a valid bucket name"),
    ("s3://models//x", "empty path segment"),
    ("s3://models/a/../b", "'..'"),
    ("s3://http://127.0.0.1/models/x", "the port is required"),
])
def test_uri_typos_are_one_clear_error(text, words):
    with pytest.raises(StorageError) as err:
        parse(text)
    assert text in str(err.value) and words in str(err.value)


# -- publish -------------------------------------------------------------------------------------------------------

def _record_writes(monkeypatch) -> list[str]:
    """Every verified upload and server-side copy, as the key written, in order."""
    order: list[str] = []
    real_put, real_copy = s3c.put_verified, s3c.copy_verified

    def put(c, u, key, body, digest):
        order.append(key)
        return real_put(c, u, key, body, digest)

    def copy(c, u, src, key, digest):
        order.append(key)
        return real_copy(c, u, src, key, digest)

    monkeypatch.setattr(s3c, "put_verified", put)
    monkeypatch.setattr(s3c, "copy_verified", copy)
    return order


def test_publish_order_objects_and_verify(tmp_path, s3_env, bucket, monkeypatch):
    repo = sample_copy(tmp_path)
    order = _record_writes(monkeypatch)
    report = pub.publish(repo, f"s3://{bucket}/prod")
    # everything is staged beside the repository first (a prefix Triton never lists)...
    inside = [i for i, k in enumerate(order) if k.startswith("prod/")]
    assert inside and all(k.startswith("prod.repogen-staging/tiny_cnn/") for k in order[:inside[0]])
    assert order[inside[0] - 1].endswith("/transaction.json")
    # ...then copied in: version files first with the model file last, the top-level files next, config.pbtxt
    # at the very end
    keys = [k.split("/", 1)[1] for k in order[inside[0]:]]
    assert keys[:3] == ["tiny_cnn/1/inference.pdiparams", "tiny_cnn/1/inference.pdmodel", "tiny_cnn/1/model.py"]
    assert keys[-2:] == ["tiny_cnn/repogen.json", "tiny_cnn/config.pbtxt"]
    assert "tiny_cnn/labels.txt" in keys[3:-2]
    assert report.triton_path == f"s3://http://127.0.0.1:{s3_env.port}/{bucket}/prod"

    stored = objects(s3_env, bucket)  # the staged objects are gone
    local = {f"prod/tiny_cnn/{p.relative_to(repo / 'tiny_cnn').as_posix()}": p.read_bytes()
             for p in (repo / "tiny_cnn").rglob("*") if p.is_file()}
    assert set(stored) == set(local)
    for key, data in local.items():
        if not key.endswith("repogen.json"):
            assert stored[key] == data, key
    # the store's repogen.json is the local one plus the sha256 of every other object
    meta = json.loads(stored["prod/tiny_cnn/repogen.json"])
    local_meta = json.loads(local["prod/tiny_cnn/repogen.json"])
    assert {k: v for k, v in meta.items() if k != "objects"} == local_meta
    assert meta["objects"] == {k.split("/", 2)[2]: _sha(v) for k, v in local.items() if not k.endswith("repogen.json")}
    assert pub.verify(f"s3://{bucket}/prod") == {"tiny_cnn": []}

    # publishing the same repository again writes nothing (a polling Triton sees no change)
    order.clear()
    again = pub.publish(repo, f"s3://{bucket}/prod")
    assert order == [] and again.models[0].unchanged_versions == [1] and again.repaired == []

    # a changed object is caught by verify and by download
    s3_env.client().put_object(Bucket=bucket, Key="prod/tiny_cnn/1/model.py", Body=b"# tampered\n")
    assert pub.verify(f"s3://{bucket}/prod") == {"tiny_cnn": ["1/model.py: sha256 differs from repogen.json"]}
    with pytest.raises(StorageError, match=r"tiny_cnn/1/model.py: sha256 .* differs"):
        download(parse(f"s3://{bucket}/prod"), tmp_path / "dl")


def test_download_round_trip(tmp_path, s3_env, bucket):
    repo = sample_copy(tmp_path)
    pub.publish(repo, f"s3://{bucket}")
    assert download(parse(f"s3://{bucket}"), tmp_path / "dl") == ["tiny_cnn"]
    for p in (repo / "tiny_cnn").rglob("*"):
        if p.is_file() and p.name != "repogen.json":
            assert (tmp_path / "dl" / "tiny_cnn" / p.relative_to(repo / "tiny_cnn")).read_bytes() == p.read_bytes()


def _add_version(repo: Path, version: int, tweak: bytes) -> None:
    src = repo / "tiny_cnn" / "1"
    dst = repo / "tiny_cnn" / str(version)
    shutil.copytree(src, dst)
    with open(dst / "model.py", "ab") as f:
        f.write(tweak)


def test_new_version_keeps_old_until_prune(tmp_path, s3_env, bucket):
    repo = sample_copy(tmp_path)
    pub.publish(repo, f"s3://{bucket}/m")
    v2 = tmp_path / "v2"
    shutil.copytree(repo, v2)
    shutil.rmtree(v2 / "tiny_cnn" / "1")
    _add_version(repo, 2, b"\n# v2\n")
    shutil.copytree(repo / "tiny_cnn" / "2", v2 / "tiny_cnn" / "2")
    rep = pub.publish(v2, f"s3://{bucket}/m")
    assert rep.models[0].uploaded_versions == [2] and rep.models[0].pruned_versions == []
    keys = set(objects(s3_env, bucket))
    assert "m/tiny_cnn/1/model.py" in keys and "m/tiny_cnn/2/model.py" in keys  # nothing deleted unasked
    meta = json.loads(objects(s3_env, bucket)["m/tiny_cnn/repogen.json"])
    assert "1/model.py" in meta["objects"] and "2/model.py" in meta["objects"]
    assert pub.verify(f"s3://{bucket}/m") == {"tiny_cnn": []}

    v3 = tmp_path / "v3"
    shutil.copytree(v2, v3)
    shutil.rmtree(v3 / "tiny_cnn" / "2")
    _add_version(repo, 3, b"\n# v3\n")
    shutil.copytree(repo / "tiny_cnn" / "3", v3 / "tiny_cnn" / "3")
    assert main(["publish", str(v3), f"s3://{bucket}/m", "--prune", "2", "--json"]) == 0
    keys = set(objects(s3_env, bucket))
    assert not any(k.startswith("m/tiny_cnn/1/") for k in keys)
    assert {"m/tiny_cnn/2/model.py", "m/tiny_cnn/3/model.py"} <= keys
    meta = json.loads(objects(s3_env, bucket)["m/tiny_cnn/repogen.json"])
    assert not any(k.startswith("1/") for k in meta["objects"]) and "3/model.py" in meta["objects"]
    assert pub.verify(f"s3://{bucket}/m") == {"tiny_cnn": []}


def test_existing_version_with_other_content_is_refused_before_any_write(tmp_path, s3_env, bucket, capsys):
    repo = sample_copy(tmp_path)
    pub.publish(repo, f"s3://{bucket}")
    before = objects(s3_env, bucket)
    with open(repo / "tiny_cnn" / "1" / "model.py", "a") as f:
        f.write("\n# changed in place\n")
    assert main(["publish", str(repo), f"s3://{bucket}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"s3://{bucket}/tiny_cnn/1" in err and "1/model.py" in err and "as version 2" in err
    assert objects(s3_env, bucket) == before


def test_older_repository_never_overwrites_a_newer_config(tmp_path, s3_env, bucket):
    repo = sample_copy(tmp_path)
    _add_version(repo, 2, b"\n# v2\n")
    pub.publish(repo, f"s3://{bucket}")
    old = tmp_path / "old"
    shutil.copytree(repo, old)
    shutil.rmtree(old / "tiny_cnn" / "2")
    cfg = old / "tiny_cnn" / "config.pbtxt"
    cfg.write_text(cfg.read_text().replace("max_batch_size: 8", "max_batch_size: 4"))
    before = objects(s3_env, bucket)
    with pytest.raises(StorageError, match=r"already serves version 2, newer .* older config.pbtxt"):
        pub.publish(old, f"s3://{bucket}")
    assert objects(s3_env, bucket) == before


def test_changed_source_copy_is_refused(tmp_path, s3_env, bucket):
    repo = sample_copy(tmp_path)
    with open(repo / "tiny_cnn" / "1" / "inference.pdiparams", "ab") as f:
        f.write(b"\0")
    with pytest.raises(StorageError, match=r"inference.pdiparams: sha256 differs from the one .*repogen.json"):
        pub.publish(repo, f"s3://{bucket}")
    assert objects(s3_env, bucket) == {}


def test_failure_mid_upload_leaves_nothing_half_uploaded(tmp_path, s3_env, bucket, monkeypatch):
    repo = sample_copy(tmp_path)
    real_put = s3c.put_verified
    calls = []

    def flaky(c, u, key, body, digest):
        calls.append(key)
        if len(calls) == 3:
            raise StorageError(f"{u}: simulated network failure uploading {key}")
        return real_put(c, u, key, body, digest)

    monkeypatch.setattr(s3c, "put_verified", flaky)
    with pytest.raises(StorageError, match="simulated"):
        pub.publish(repo, f"s3://{bucket}/x")
    assert len(calls) == 3 and objects(s3_env, bucket) == {}


# -- bad input: one clear error naming the URI, within seconds, nothing written -----------------------------------

def _cli_error(capsys, argv) -> tuple[str, float]:
    t = time.monotonic()
    assert main(argv) == 2
    took = time.monotonic() - t
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err, took


def test_missing_bucket(tmp_path, s3_env, capsys):
    err, took = _cli_error(capsys, ["publish", str(sample_copy(tmp_path)), "s3://no-such-bucket/p"])
    assert "s3://no-such-bucket/p" in err and "bucket 'no-such-bucket' does not exist" in err and took < 10


def test_wrong_credentials(tmp_path, s3_env, bucket, capsys, monkeypatch):
    repo = sample_copy(tmp_path)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    err, took = _cli_error(capsys, ["publish", str(repo), f"s3://{bucket}/p"])
    assert f"s3://{bucket}/p" in err and ("wrong credentials" in err or "secret key is wrong" in err) and took < 10
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANOTAKEY")
    err, took = _cli_error(capsys, ["publish", str(repo), f"s3://{bucket}/p"])
    assert f"s3://{bucket}/p" in err and ("not known to the store" in err or "wrong credentials" in err)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_env.secret_key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_env.access_key)
    assert objects(s3_env, bucket) == {}


def test_unreachable_endpoint(tmp_path, s3_env, capsys):
    dead = f"http://127.0.0.1:{free_port()}"
    err, took = _cli_error(capsys, ["publish", str(sample_copy(tmp_path)), "s3://models/p", "--endpoint-url", dead])
    assert "s3://models/p" in err and f"cannot reach {dead}" in err and took < 15


def test_uri_typo_in_cli(tmp_path, s3_env, capsys):
    err, _ = _cli_error(capsys, ["publish", str(sample_copy(tmp_path)), "s3:/models/p"])
    assert "s3:/models/p" in err and "not a repository URI" in err


def test_build_out_s3(tmp_path, s3_env, bucket, capsys):
    """``repogen build --out s3://``: build locally, publish, nothing left in the staging folder."""
    assert main(["build", "--out", f"s3://{bucket}/built", "--target", "paddle", "--no-check", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["out"] == f"s3://{bucket}/built"
    keys = set(objects(s3_env, bucket))
    assert {f"built/tiny_cnn/config.pbtxt", "built/tiny_cnn/1/model.py", "built/tiny_cnn/repogen.json"} <= keys
    assert pub.verify(f"s3://{bucket}/built") == {"tiny_cnn": []}


def test_build_out_missing_bucket_fails_before_building(tmp_path, s3_env, capsys):
    err, took = _cli_error(capsys, ["build", "--out", "s3://absent-bucket/x", "--target", "paddle"])
    assert "s3://absent-bucket/x" in err and "does not exist" in err and took < 10
