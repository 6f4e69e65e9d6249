"""The inference defaults, written once (no torch here: the CLI's configs read them).

``CONF``: the score a detection needs to be reported by predict, the app and the API (evaluation keeps every
score). ``IOU``: the NMS IoU of the SSD family (the SSD paper's), where the app's slider starts.
"""

CONF = 0.25
IOU = 0.45
