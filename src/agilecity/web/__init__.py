"""The web pages: the public city dashboard and the staff console (``web.pages``)."""
