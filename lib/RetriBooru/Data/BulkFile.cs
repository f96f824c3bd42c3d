namespace RetriBooru.Data;

/// <summary>
/// Atomic (temp file + rename) but not fsync'ed writes, for the thousands of small image, mask, crop and sidecar files of
/// a dataset: readers never see a half-written file, and skipping the per-file fsync makes generation and ingestion
/// several times faster. Records, manifests and stats, which make a dataset visible, use the durable
/// <see cref="Runtime.AtomicFile"/>.
/// </summary>
internal static class BulkFile
{
    public static void WriteAllBytes(string path, byte[] content)
    {
        var full = Path.GetFullPath(path);
        var tmp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            File.WriteAllBytes(tmp, content);
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    public static void WriteAllText(string path, string content) => WriteAllBytes(path, new System.Text.UTF8Encoding(false).GetBytes(content));
}
