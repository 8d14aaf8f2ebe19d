# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
class AudioEncoder:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("the WAV-only torchcodec stand-in cannot encode audio; install torchcodec and FFmpeg.")
