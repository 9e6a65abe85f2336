"""The demo town: a generated town of about 50,000 inhabitants whose devices publish readings."""
