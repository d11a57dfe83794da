"""Placeholder: filled in by the cockpit pages' work."""

from __future__ import annotations

from fastapi import APIRouter

cockpit_router = APIRouter()
