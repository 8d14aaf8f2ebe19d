# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""WAV-only stand-in for torchcodec on benchmark machines without FFmpeg (see ../README.md). Not the real package."""

STAND_IN = True
