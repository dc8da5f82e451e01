"""bench.garak_run: the pure parts (garak's configuration, the doc update). The run itself
needs vLLM and .venv-garak and is `make garak`, not a test."""

from __future__ import annotations

from pathlib import Path

from bench.garak_run import BEGIN, END, garak_config, garak_env, parse_args, update_doc


def test_both_passes_get_the_same_configuration_but_for_the_target(tmp_path: Path) -> None:
    args = parse_args(["--probes", "dan.DanInTheWild,encoding.InjectBase64", "--cap", "5"])
    without = garak_config(args, "http://127.0.0.1:1/v1/", tmp_path, "without")
    with_gateway = garak_config(args, "http://127.0.0.1:2/v1/", tmp_path, "with")
    assert without["run"] == with_gateway["run"]
    assert without["run"] == {
        "seed": 7,
        "generations": 1,
        "soft_probe_prompt_cap": 5,
        "spec": {"include": ["probes.dan.DanInTheWild", "probes.encoding.InjectBase64"]},
    }


def test_the_api_key_goes_in_the_environment_not_the_config(tmp_path: Path) -> None:
    args = parse_args([])
    config = garak_config(args, "http://127.0.0.1:2/v1/", tmp_path, "with")
    generator = config["plugins"]["generators"]["openai"]["OpenAICompatible"]
    assert "api_key" not in generator and generator["uri"] == "http://127.0.0.1:2/v1/"
    env = garak_env(tmp_path, "sk-secret")
    assert env["OPENAICOMPATIBLE_API_KEY"] == "sk-secret"
    assert env["HF_HUB_OFFLINE"] == "1" and env["PYTHONHASHSEED"] == "0"
    assert env["XDG_DATA_HOME"].startswith(str(tmp_path))


def test_update_doc_rewrites_only_between_the_markers(tmp_path: Path) -> None:
    doc = tmp_path / "security.md"
    doc.write_text(f"# Security\nintro\n{BEGIN}\nold table\n{END}\n\n## Soak\nlead's part\n")
    assert update_doc(doc, "new table\n")
    assert (
        doc.read_text() == f"# Security\nintro\n{BEGIN}\nnew table\n{END}\n\n## Soak\nlead's part\n"
    )


def test_update_doc_leaves_a_file_without_markers_alone(tmp_path: Path) -> None:
    doc = tmp_path / "security.md"
    doc.write_text("hand-written\n")
    assert not update_doc(doc, "table")
    assert doc.read_text() == "hand-written\n"
