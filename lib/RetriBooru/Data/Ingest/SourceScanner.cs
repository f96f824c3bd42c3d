using System.Text.Json;
using RetriBooru.Runtime;

namespace RetriBooru.Data.Ingest;

/// <summary>An image found in the source folder with its sidecars (paths relative to the source root, '/' separated).</summary>
public sealed record SourceImage(string RelativePath, string? TagFile, string? PostFile, string? MaskFile, string? FaceFile)
{
    /// <summary>Relative path without extension: the key that pairs an image with its sidecars.</summary>
    public string Key => SourceScanner.KeyOf(RelativePath);
    public string Stem => Path.GetFileName(Key);
}

/// <summary>A post from a batch metadata file (JSON Lines or a JSON array), with where it came from.</summary>
public sealed record BatchPost(PostTags Tags, string SourceFile, int Line);

/// <summary>What a scan found: images with sidecars, and batch post metadata indexed by post id, md5 and file.</summary>
public sealed class SourceScan
{
    public required string Root { get; init; }
    public required IReadOnlyList<SourceImage> Images { get; init; }
    public Dictionary<string, BatchPost> PostsById { get; } = new(StringComparer.Ordinal);
    public Dictionary<string, BatchPost> PostsByMd5 { get; } = new(StringComparer.OrdinalIgnoreCase);
    public Dictionary<string, BatchPost> PostsByFile { get; } = new(StringComparer.Ordinal);

    /// <summary>The full path of a file the scan found (relative, '/'-separated); never outside <see cref="Root"/>.</summary>
    public string FullPath(string relative) => SafePath.Under(Root, relative, "source file");
}

/// <summary>
/// Walks a Danbooru-style folder. Recognised files, paired by relative path without extension:
/// <c>X.png|jpg|jpeg|webp|gif|bmp</c> (image), <c>X.txt</c> (tags), <c>X.json</c> (one post's metadata),
/// <c>X.mask.png</c> (figure mask), <c>X.face.txt</c> (face box "x y w h", normalised). Any other <c>.json</c> or
/// <c>.jsonl</c> is a batch of post metadata matched to images by post id, md5 or its <c>file</c> field.
/// Symbolic links are never followed (they could leave the root or duplicate a file); every skipped entry is reported.
/// </summary>
public static class SourceScanner
{
    public static readonly IReadOnlySet<string> ImageExtensions = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { ".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp" };
    /// <summary>Files the synthetic generator writes that are not part of the Danbooru format.</summary>
    public static readonly IReadOnlySet<string> ReservedNames = new HashSet<string>(StringComparer.Ordinal) { "attributes.jsonl", "synth.json" };

    /// <summary>The relative path without its extension ('/'-separated in, '/'-separated out; a backslash stays part of a name).</summary>
    public static string KeyOf(string relativePath)
    {
        int slash = relativePath.LastIndexOf('/');
        var stem = Path.GetFileNameWithoutExtension(relativePath[(slash + 1)..]);
        return slash < 0 ? stem : relativePath[..(slash + 1)] + stem;
    }

    public static SourceScan Scan(string root, BuildReport report, IProgress<DatasetProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var fullRoot = Path.GetFullPath(root);
        if (!Directory.Exists(fullRoot)) throw new DirectoryNotFoundException($"{root}: source folder does not exist");
        var images = new List<string>(); var tagFiles = new Dictionary<string, string>(); var postFiles = new Dictionary<string, string>();
        var masks = new Dictionary<string, string>(); var faces = new Dictionary<string, string>(); var batches = new List<string>();
        var pending = new Stack<string>();
        pending.Push(fullRoot);
        int seen = 0;
        while (pending.Count > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var dir = pending.Pop();
            IEnumerable<FileSystemInfo> entries;
            try { entries = new DirectoryInfo(dir).EnumerateFileSystemInfos().OrderBy(e => e.Name, StringComparer.Ordinal).ToList(); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                report.Reject(Relative(fullRoot, dir), "unreadable_folder", $"cannot list folder: {e.Message}");
                continue;
            }
            foreach (var entry in entries)
            {
                var rel = Relative(fullRoot, entry.FullName);
                if (entry.LinkTarget is not null)
                {
                    var target = ResolveLink(entry);
                    bool escapes = target is null || !SafePath.IsInside(fullRoot, target);
                    report.Reject(rel, escapes ? "path_escapes_root" : "symlink",
                        escapes ? $"symbolic link to {entry.LinkTarget} points outside the source root; not followed"
                                : $"symbolic link to {entry.LinkTarget}; not followed (links could duplicate files or leave the root)");
                    continue;
                }
                if (entry is DirectoryInfo) { pending.Push(entry.FullName); continue; }
                progress?.Report(new DatasetProgress("scan", ++seen, 0, rel));
                var name = entry.Name;
                var lower = name.ToLowerInvariant();
                if (rel.IndexOf('/') < 0 && ReservedNames.Contains(name)) { report.Ignore(rel, "reserved_file", "generator file, not part of the source format"); continue; }
                if (name.StartsWith('.')) { report.Ignore(rel, "hidden_file", "hidden file"); continue; }
                if (lower.EndsWith(".mask.png", StringComparison.Ordinal)) masks[rel[..^".mask.png".Length]] = rel;
                else if (lower.EndsWith(".face.txt", StringComparison.Ordinal)) faces[rel[..^".face.txt".Length]] = rel;
                else if (lower.EndsWith(".txt", StringComparison.Ordinal)) tagFiles[KeyOf(rel)] = rel;
                else if (lower.EndsWith(".json", StringComparison.Ordinal)) postFiles[KeyOf(rel)] = rel;
                else if (lower.EndsWith(".jsonl", StringComparison.Ordinal)) batches.Add(rel);
                else if (ImageExtensions.Contains(Path.GetExtension(name))) images.Add(rel);
                else report.Ignore(rel, "not_an_image", $"not an image or a known sidecar (extension '{Path.GetExtension(name)}')");
            }
        }
        images.Sort(StringComparer.Ordinal);
        var imageKeys = images.Select(KeyOf).ToHashSet(StringComparer.Ordinal);
        // A .json without a matching image is a batch metadata file (Danbooru2019 ships JSON Lines named *.json).
        foreach (var (key, rel) in postFiles.Where(p => !imageKeys.Contains(p.Key)).ToList()) { batches.Add(rel); postFiles.Remove(key); }
        foreach (var (key, rel) in tagFiles.Where(p => !imageKeys.Contains(p.Key))) report.Ignore(rel, "orphan_sidecar", "tag file without an image of the same name");
        foreach (var (key, rel) in masks.Where(p => !imageKeys.Contains(p.Key))) report.Ignore(rel, "orphan_sidecar", "mask without an image of the same name");
        foreach (var (key, rel) in faces.Where(p => !imageKeys.Contains(p.Key))) report.Ignore(rel, "orphan_sidecar", "face box without an image of the same name");

        var scan = new SourceScan
        {
            Root = fullRoot,
            Images = images.Select(rel =>
            {
                var key = KeyOf(rel);
                return new SourceImage(rel, tagFiles.GetValueOrDefault(key), postFiles.GetValueOrDefault(key), masks.GetValueOrDefault(key), faces.GetValueOrDefault(key));
            }).ToList(),
        };
        batches.Sort(StringComparer.Ordinal);
        foreach (var batch in batches) ReadBatch(scan, batch, report);
        return scan;
    }

    static void ReadBatch(SourceScan scan, string rel, BuildReport report)
    {
        var path = scan.FullPath(rel);
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { report.Reject(rel, "unreadable", $"cannot read metadata: {e.Message}"); return; }
        if (string.IsNullOrWhiteSpace(text)) { report.Reject(rel, "malformed_metadata", "empty metadata file"); return; }
        var entries = new List<(JsonElement Element, int Line)>();
        if (text.TrimStart().StartsWith('['))
        {
            try
            {
                using var document = JsonDocument.Parse(text);
                int i = 0;
                foreach (var e in document.RootElement.EnumerateArray()) entries.Add((e.Clone(), ++i));
            }
            catch (JsonException e) { report.Reject(rel, "malformed_metadata", $"malformed JSON array: {e.Message}"); return; }
        }
        else
        {
            int lineNumber = 0;
            foreach (var line in text.Split('\n'))
            {
                lineNumber++;
                if (string.IsNullOrWhiteSpace(line)) continue;
                try
                {
                    using var document = JsonDocument.Parse(line);
                    entries.Add((document.RootElement.Clone(), lineNumber));
                }
                catch (JsonException e) { report.Reject($"{rel}:{lineNumber}", "malformed_metadata", $"malformed JSON line: {e.Message}"); }
            }
        }
        foreach (var (element, line) in entries)
        {
            PostTags tags;
            try { tags = PostTagParser.ParsePost(element); }
            catch (TagFormatException e) { report.Reject($"{rel}:{line}", e.Code, e.Message); continue; }
            var post = new BatchPost(tags, rel, line);
            if (tags.File is string file)
            {
                string resolved;
                try { resolved = SafePath.Under(scan.Root, Path.Combine(Path.GetDirectoryName(rel) ?? "", file), "metadata 'file'"); }
                catch (InvalidDataException) { report.Reject($"{rel}:{line}", "path_escapes_root", $"metadata 'file' {file} points outside the source root"); continue; }
                scan.PostsByFile[Relative(scan.Root, resolved)] = post;
            }
            if (tags.PostId is string id && !scan.PostsById.TryAdd(id, post))
                report.Reject($"{rel}:{line}", "duplicate_id", $"post id {id} already described at {scan.PostsById[id].SourceFile}:{scan.PostsById[id].Line}");
            if (tags.Md5 is string md5) scan.PostsByMd5.TryAdd(md5, post);
        }
    }

    static string? ResolveLink(FileSystemInfo entry)
    {
        try { return entry.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? Path.GetFullPath(Path.Combine(Path.GetDirectoryName(entry.FullName)!, entry.LinkTarget!)); }
        catch (IOException) { return null; }
    }

    /// <summary>
    /// A path relative to the root, '/'-separated. Only the platform's separator is translated: on Linux a backslash is an
    /// ordinary character of a file name (<c>x\..\..\a.png</c> is one file), never a separator to reinterpret.
    /// </summary>
    internal static string Relative(string root, string path)
    {
        var relative = Path.GetRelativePath(root, path);
        return Path.DirectorySeparatorChar == '/' ? relative : relative.Replace(Path.DirectorySeparatorChar, '/');
    }
}
