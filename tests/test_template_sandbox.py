"""Custom config templates are data: rendered in Jinja2's sandbox, so they cannot run Python."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from repogen import cli

ESCAPES = {
    "globals": '{{{{ cycler.__init__.__globals__.os.system("touch {marker}") }}}}',
    "subclasses": "{{{{ ''.__class__.__mro__[1].__subclasses__() }}}}",
    "mutate": "{{% set _ = inputs.append(1) %}}",
}


@pytest.mark.parametrize("case", sorted(ESCAPES))
def test_template_escapes_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture, case: str) -> None:
    marker = tmp_path / "pwned"
    template = tmp_path / "evil.pbtxt.j2"
    template.write_text(ESCAPES[case].format(marker=marker) + "\n")
    out = tmp_path / "repo"
    rc = cli.main(["build", "--out", str(out), "--no-check", "--target", "paddle", "--template", str(template)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert f"repogen build: error: {template} line 1: refused by the template sandbox: access to attribute" in err
    assert not marker.exists() and not out.exists()


def test_custom_template_with_macros_and_q_filter_renders(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    template = tmp_path / "mine.pbtxt.j2"
    template.write_text('{% import "_io.pbtxt.j2" as io with context %}\n'
                        'name: {{ name | q }}\nbackend: "python"\nmax_batch_size: {{ max_batch_size }}\n'
                        '{{ io.tensors("input", inputs) }}{{ io.tensors("output", outputs) }}{{ io.scheduling() }}'
                        'parameters { key: "note" value: { string_value: {{ \'say "hi" \\\\ bye\' | q }} } }\n')
    out = tmp_path / "repo"
    rc = cli.main(["build", "--out", str(out), "--no-check", "--target", "paddle", "--template", str(template)])
    assert rc == 0, capsys.readouterr().err
    cfg = text_format.Parse((out / "tiny_cnn" / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert cfg.name == "tiny_cnn" and cfg.max_batch_size == 8 and cfg.input[0].name == "image"
    assert cfg.parameters["note"].string_value == 'say "hi" \\ bye'
