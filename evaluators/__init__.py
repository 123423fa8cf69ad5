"""One module per measurement, over runtime backends behind one small interface."""
