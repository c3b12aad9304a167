"""SGLang launch_server flags per version (JSON), and the script that re-derives them."""
