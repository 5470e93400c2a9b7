@echo off
REM One-time setup of the native BACnet worker on a Windows host (seed 003, hybrid):
REM checks Python, creates .venv, installs the requirements, writes .env from
REM .env.example when missing, and checks the Django configuration.
REM Every failure prints what to do and exits with code 1. Safe to run again.
REM Run it from a cmd window in the project folder:  setup_windows_env.bat
setlocal EnableExtensions
cd /d "%~dp0"

echo.
echo BACnet Monitor - Windows setup of the native BACnet worker
echo.

REM Step 1: Python 3.11 or newer, through the py launcher or python on PATH.
set "PYTHON="
py -3 -c "import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)" >nul 2>&1
if not errorlevel 1 set "PYTHON=py -3"
if not defined PYTHON (
    python -c "import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)" >nul 2>&1
    if not errorlevel 1 set "PYTHON=python"
)
if not defined PYTHON (
    echo ERROR: Python 3.11 or newer was not found.
    echo Install it from https://www.python.org/downloads/windows/ with the py launcher
    echo or the option to add python.exe to PATH, open a new cmd window, run this again.
    exit /b 1
)
echo [1/5] Python found:
%PYTHON% --version

REM Step 2: the virtual environment, created once and reused.
if exist ".venv\Scripts\python.exe" (
    echo [2/5] Using the existing virtual environment .venv
) else (
    echo [2/5] Creating the virtual environment .venv
    %PYTHON% -m venv .venv
    if errorlevel 1 (
        echo ERROR: could not create the virtual environment in .venv.
        echo Delete the .venv folder if it is half made, then run this again.
        exit /b 1
    )
)
set "VENV_PYTHON=%CD%\.venv\Scripts\python.exe"

REM Step 3: the requirements.
echo [3/5] Installing the requirements (this takes a few minutes the first time)
"%VENV_PYTHON%" -m pip install --upgrade pip
if errorlevel 1 (
    echo ERROR: could not upgrade pip in .venv. Check the network connection or proxy.
    exit /b 1
)
"%VENV_PYTHON%" -m pip install -r requirements.txt
if errorlevel 1 (
    echo ERROR: could not install requirements.txt. Read the pip messages above; check
    echo the network connection or proxy, then run this again.
    exit /b 1
)

REM Step 4: .env from the example, with a fresh SECRET_KEY; an existing .env is kept.
if exist ".env" (
    echo [4/5] Keeping the existing .env
) else (
    echo [4/5] Writing .env from .env.example
    copy /y ".env.example" ".env" >nul
    if errorlevel 1 (
        echo ERROR: could not copy .env.example to .env. Is the folder writable?
        exit /b 1
    )
    "%VENV_PYTHON%" -c "import pathlib, re, secrets; p = pathlib.Path('.env'); p.write_text(re.sub(r'(?m)^SECRET_KEY=$', 'SECRET_KEY=' + secrets.token_urlsafe(50), p.read_text()))"
    if errorlevel 1 (
        echo ERROR: could not write a SECRET_KEY into .env. Set SECRET_KEY in .env by hand.
        exit /b 1
    )
    echo Edit .env now: set POSTGRES_PASSWORD and the same password in DATABASE_URL,
    echo FLOWER_BASIC_AUTH, BACNET_BACKEND and BACNET_INTERFACE ^(this PC's LAN address^).
)

REM Step 5: the Django configuration as the worker will load it.
echo [5/5] Checking the Django configuration
set "DJANGO_SETTINGS_MODULE=bacnet_project.windows_settings"
"%VENV_PYTHON%" manage.py check
if errorlevel 1 (
    echo ERROR: the Django configuration check failed. Read the message above, fix .env
    echo and run this again.
    exit /b 1
)

echo.
echo Setup complete. Next:
echo   1. Edit .env if you have not yet ^(see .env.example for every setting^).
echo   2. Start the containers:
echo        docker compose -f docker-compose.yml -f docker-compose.windows.yml up -d
echo   3. Start the BACnet worker:  start_bacnet_worker.bat
endlocal
exit /b 0
