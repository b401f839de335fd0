"""One blueprint per resource; service.app registers them all."""
