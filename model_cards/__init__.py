# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Model card templates, installed as the package `modeling_mgcma.model_cards` (see pyproject.toml)."""
