"""The library example in the README runs as written."""

from pathlib import Path


def test_readme_python_example_runs():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = [part.split("```", 1)[0] for part in text.split("```python")[1:]]
    assert blocks, "README.md: no ```python example found"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
