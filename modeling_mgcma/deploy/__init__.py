# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Deployment: ONNX export, the torch-free runtime of exported folders, and fast CPU inference."""
