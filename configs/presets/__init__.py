# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""run_mgcma.py's hyperparameter presets (`<name>.yaml`), installed as `modeling_mgcma.experiments.presets`."""
