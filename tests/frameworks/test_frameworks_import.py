"""``import initlab`` (and its port check) never imports Keras, JAX or Flax."""

import subprocess
import sys
import textwrap
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def test_importing_initlab_and_the_port_check_imports_no_framework():
    script = textwrap.dedent(
        """
        import sys
        import initlab
        report = initlab.compare_conventions("glorot_normal", (3, 3, 16, 32), framework="keras")
        assert report.row("keras").call == "keras.initializers.GlorotNormal()"
        from initlab.cli import main
        assert main(["port-check", "orthogonal", "64", "3", "3", "3"]) == 0
        loaded = sorted({name.split(".")[0] for name in sys.modules} & {"keras", "jax", "jaxlib", "flax"})
        print("LOADED", loaded)
        """
    )
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "LOADED []"
