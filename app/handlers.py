"""What the app does, as plain functions the UI (and the tests) call; each lives in the module of its concern:

    app.session   Session (the loaded INR and its history of steps), the per-session request lock
    app.sources   fit_image / load_example / load_inr_file (with the work bounds of an INR file)
    app.registry  the editors offered (gmn's registry + published ones), cards, the filter for an INR
    app.editing   edit / paint / restrength / undo / redo / goto / reset / downloads
    app.paint     the Paint section's input → mask and colours
    app.views     what the edit tab shows (renders, target, change, points, GradMetaNet's view, metrics)
    app.colours   colour maps, titles and colour bars
    app.admin     password guard, train / evaluate / publish / delete
    app.validate  checks of every value a request brings

Every user-facing failure is a `gr.Error` with one readable line; the session is left as it was.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from inr.siren import SirenArch  # noqa: F401 - for callers that read a session's architecture

from .admin import (  # noqa: F401
    EDITOR_SIZES,
    GUARD,
    RUN_PREFIX,
    TASK_CHOICES,
    admin_delete,
    admin_enabled,
    admin_evaluate,
    admin_publish,
    admin_train,
    check_admin,
    dataset_status,
    default_dataset,
    editors_table,
    evaluable,
    runs_table,
)
from .editing import (  # noqa: F401
    details,
    downloads,
    edit,
    goto,
    paint,
    redo,
    refine_step,
    render_current,
    rescale_notice,
    reset,
    restrength,
    start_background,
    undo,
    wait_refine,
)
from .paint import paint_inputs  # noqa: F401
from .registry import (  # noqa: F401
    Settings,
    card_markdown,
    filter_editors_for,
    get_editor,
    list_editors,
    read_card,
    registry,
)
from .session import MAX_HISTORY, Session, need  # noqa: F401
from .sources import (  # noqa: F401
    DEFAULT_HIDDEN,
    DEFAULT_LAYERS,
    DEFAULT_STEPS,
    DOWNSCALE_SIDE,
    FIT_OPTIMIZERS,
    MAX_PARAMS,
    MAX_TILES,
    MAX_WORKING,
    example_names,
    example_thumbnails,
    fit_image,
    load_example,
    load_inr_file,
    read_image,
)
from .validate import MAX_DISPLAY  # noqa: F401
from .views import db, metrics, png_file, views  # noqa: F401

new_session = Session.new


def session_dir(session_hash: str | None) -> Path:
    """Where a browser session's downloads are written."""
    safe = re.sub(r"[^A-Za-z0-9]", "", session_hash or "anon")[:64] or "anon"
    return Path(tempfile.gettempdir()) / "gmn-app" / safe


def cleanup_session(session_hash: str | None) -> None:
    shutil.rmtree(session_dir(session_hash), ignore_errors=True)
