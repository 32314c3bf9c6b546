"""Phase 4 (04_backup_restore): back up the source, upload it to S3, restore an Aurora cluster from it."""
