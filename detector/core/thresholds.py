"""The inference defaults, written once (no torch here: the CLI's configs read them).

``CONF``: the score a detection needs to be reported by predict, the app and the API when the model has no
threshold of its own (evaluation keeps every score). ``IOU``: the NMS IoU of the SSD family (the SSD paper's).
A model's own NMS IoU and maximum detections are its constructor's (``post_defaults``); ``MAX_DET`` caps what
any caller may ask for (and how many candidates a class filter looks through).
"""

CONF = 0.25
IOU = 0.45
MAX_DET = 1000  # detections per image at most: the cap of --max-det, max_det= and the app's field
