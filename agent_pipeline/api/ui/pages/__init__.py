"""The dashboard's pages, one module each; each module has its own `router` under `/ui`."""
