"""The cases of `bad_input_corpus`, one module per area; importing this registers all of them."""

import bad_inputs_api  # noqa: F401
import bad_inputs_cli  # noqa: F401
import bad_inputs_files  # noqa: F401
import bad_inputs_load  # noqa: F401
import bad_inputs_scripts  # noqa: F401
import bad_inputs_writers  # noqa: F401
