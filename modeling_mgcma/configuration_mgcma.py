# placeholder: replaced by the core-model work
DEFAULT_EMOTION_LABELS = ("angry", "happy", "sad", "neutral")
