"""One router per delivery mode, plus the small API around them."""
