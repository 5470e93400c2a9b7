@echo off
REM Starts the native BACnet worker on a Windows host (seed 003, hybrid).
REM 1. activates .venv (made by setup_windows_env.bat),
REM 2. checks that PostgreSQL and, for the Celery backend, Redis answer
REM    (bacnet_worker_windows.py --check: it connects to them; exit code 2 if not),
REM 3. starts the worker. Arguments are passed on, e.g.:
REM      start_bacnet_worker.bat --backend database --loglevel DEBUG
REM      start_bacnet_worker.bat --site hq      (the worker of site "hq": one per site)
REM Stop it with Ctrl+C. To run it as a Windows service, see docs\deployment.md.
setlocal EnableExtensions
cd /d "%~dp0"

if not exist ".venv\Scripts\activate.bat" (
    echo ERROR: the virtual environment .venv was not found.
    echo Run setup_windows_env.bat first.
    exit /b 1
)
if not exist ".env" (
    echo ERROR: .env was not found. Run setup_windows_env.bat, then edit .env.
    exit /b 1
)

echo [1/3] Activating the virtual environment .venv
call ".venv\Scripts\activate.bat"
if errorlevel 1 (
    echo ERROR: could not activate .venv. Run setup_windows_env.bat again.
    exit /b 1
)

echo [2/3] Checking that the database and the broker answer
python bacnet_worker_windows.py --check %*
if errorlevel 1 (
    echo ERROR: the start-up checks failed; the messages above say what to fix.
    echo Are the containers running?
    echo   docker compose -f docker-compose.yml -f docker-compose.windows.yml up -d
    exit /b 2
)

echo [3/3] Starting the BACnet worker ^(Ctrl+C to stop^)
python bacnet_worker_windows.py %*
set "WORKER_EXIT=%ERRORLEVEL%"
if not "%WORKER_EXIT%"=="0" echo ERROR: the BACnet worker stopped with exit code %WORKER_EXIT%.
endlocal & exit /b %WORKER_EXIT%
