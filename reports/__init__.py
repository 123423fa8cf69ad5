"""Tables (pandas) and plots (matplotlib) rendered into one self-contained HTML file."""
