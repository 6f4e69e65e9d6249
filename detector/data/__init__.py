"""Data sets: readers and writers of COCO, VOC, YOLO and the book's banana CSV into one record type
(``records``), checks (``check``), conversion, the generated sets (``synth``), augmentation (``transforms``),
the DataLoader path (``loader``) and the device-resident path (``device``), and classification data
(``classify``). Imports ``detector.core`` only."""
