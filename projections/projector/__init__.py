"""The Faust projector process: tables and the ``<prefix>.assignments`` topic."""
