"""The PAM module (pam_tfa.py) that sshd, sudo, su and login load through pam_python.

It runs inside the host's system Python, not tfa's environment, so it imports nothing of tfa
and nothing outside the standard library; this package only says where the file is.
"""

from pathlib import Path

PAM_MODULE = Path(__file__).resolve().with_name("pam_tfa.py")
