"""Minimal API used to test images with services and routes."""

from fastapi import FastAPI

app = FastAPI(title="testapi")


@app.get("/")
def root() -> dict:
    return {"service": "testapi", "status": "ok"}


@app.get("/health")
def health() -> dict:
    return {"status": "ok"}
