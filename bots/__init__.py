"""What CampBot does: one package per capability (see README, "Where things live"), each
exporting its registration (`capability`), and `dispatch`, what their handlers use."""
