"""cfn-lint on every synthesized template (W3005 on CDK-generated DependsOn is expected)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.infrastructure.conftest import Assembly

CFN_LINT = Path(sys.executable).parent / "cfn-lint"


def test_every_template_is_cfn_lint_clean(assembly: Assembly) -> None:
    # Given every synthesized template
    templates = [str(assembly.template_path(s)) for s in assembly.stacks()]
    assert templates
    # When cfn-lint checks them
    result = subprocess.run([str(CFN_LINT), "--ignore-checks", "W3005", "--", *templates],
                            capture_output=True, text=True, timeout=300)
    # Then it finds nothing
    assert result.returncode == 0, result.stdout + result.stderr
