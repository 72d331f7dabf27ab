"""``pip install .`` (a wheel, not the editable checkout): a sweep run from an empty folder finds its search
space and the report template in the installed package; in the checkout both are the top-level files users edit.

The wheel is built from a copy of the checkout (nothing is written into it) without build isolation and
installed with ``--no-deps`` into a fresh venv whose dependencies come from this environment through a
``.pth`` file (a path line adds that site-packages, not its ``.pth`` files: the editable install's finder
stays out), so nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from test_tune_resume import ENV, last_json
from test_tune_sweep import TINY

import infnet
from infnet.report.render import template_path
from infnet.search_space import search_space_dir

ROOT = Path(__file__).resolve().parents[1]
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", ".pytest_cache", "build", "dist",
                                    "tune_results", "mlruns", "mlflow.db")
#: where the installed package says its data is: the package, the named spaces' folder, the report template
PROBE = ("import json, infnet; from infnet.search_space import search_space_dir; from infnet.report.render import template_path; "
         "print(json.dumps([infnet.__file__, str(search_space_dir()), str(template_path())]))")


def build_wheel(tmp_path: Path) -> Path:
    """The wheel of a copy of this checkout (links kept as links, as in a clone)."""
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_SOURCE)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"),
                    str(source)], check=True, capture_output=True, text=True)
    (wheel,) = (tmp_path / "dist").glob("infnet-*.whl")
    return wheel


def venv_with(wheel: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A fresh venv with ``wheel`` installed and this environment's packages visible; its python and site-packages."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True, text=True)
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], check=True,
                               capture_output=True, text=True).stdout.strip())
    ours = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "zz_test_dependencies.pth").write_text("".join(f"{p}\n" for p in ours))
    return python, site


def test_a_sweep_runs_from_the_installed_wheel(tmp_path: Path) -> None:
    python, site = venv_with(build_wheel(tmp_path), tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in ENV.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "INFNET_SEARCH_SPACES", "INFNET_REPORT_TEMPLATE")}
    env |= {"PATH": f"{python.parent}{os.pathsep}{env['PATH']}", "INFNET_CACHE": str(tmp_path / "cache")}

    probe = subprocess.run([python, "-c", PROBE], cwd=work, env=env, capture_output=True, text=True, check=True)
    package, spaces, template = map(Path, json.loads(probe.stdout))
    assert package.is_relative_to(site / "infnet") and not package.is_relative_to(ROOT)  # the wheel's, not the checkout
    assert spaces == site / "infnet" / "search_spaces" and template.is_relative_to(site / "infnet")
    shipped = {p.name: p.read_bytes() for p in spaces.glob("*.yaml")}
    assert "implicit.yaml" in shipped and shipped == {p.name: p.read_bytes() for p in (ROOT / "search_spaces").glob("*.yaml")}
    assert template.read_bytes() == (ROOT / "dashboards" / "report.html.j2").read_bytes()

    proc = subprocess.run(
        [python, "-m", "infnet.tune", *TINY, "tune.num_samples=2", "tune.scheduler=none", "tune.name=wheel",
         f"tune.storage_path={tmp_path / 'runs'}", f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"],
        cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False)
    summary = last_json(proc)
    assert summary["num_completed"] == 2 and summary["num_errored"] == 0
    assert summary["report_path"] == str(tmp_path / "runs" / "wheel" / "report" / "report.html")
    assert Path(summary["report_path"]).is_file() and "report could not be built" not in proc.stderr


@pytest.mark.skipif(not Path(infnet.__file__).resolve().is_relative_to(ROOT), reason="infnet is not imported from this checkout")
def test_the_checkout_reads_the_files_users_edit() -> None:
    """An editable install reads the top-level ``search_spaces/`` and ``dashboards/report.html.j2`` themselves
    (the package's entries are links to them), so an edit there takes effect without reinstalling."""
    assert search_space_dir() == ROOT / "search_spaces"
    assert template_path().resolve() == ROOT / "dashboards" / "report.html.j2"
