"""DVC for mlops-sdk.

* ``storage = "dvc://."`` keeps dataset versions as DVC-tracked folders in a
  Git repository (:mod:`mlops_sdk_dvc.storage`): every version is a Git
  commit of ``datasets/NAME.dvc``, its bytes in DVC's cache and remote.
* ``Dataset.from_dvc(repo, path, rev=...)`` records data that DVC already
  tracks in any Git repository, read in place (:mod:`mlops_sdk_dvc.source`).

Nothing here imports DVC until a dataset is added or read.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
