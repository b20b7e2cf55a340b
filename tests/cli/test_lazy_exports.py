"""Package imports stay light: public names load their module on first use."""

import subprocess
import sys

import pytest


def test_importing_train_and_interactive_does_not_load_torch():
    code = "import sys, medseg.train, medseg.interactive; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_lazy_names_resolve_and_unknown_names_raise():
    import medseg.train
    from medseg.train.model_folder import ModelFolder

    assert medseg.train.ModelFolder is ModelFolder
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        _ = medseg.train.missing
