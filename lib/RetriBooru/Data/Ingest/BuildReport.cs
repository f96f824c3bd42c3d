using System.Text.Json;
using System.Text.Json.Serialization;
using RetriBooru.Runtime;

namespace RetriBooru.Data.Ingest;

public enum ProblemSeverity
{
    /// <summary>The file or image was left out of the dataset.</summary>
    Rejected,
    /// <summary>The image was kept, but an optional annotation (mask, face box) was unusable and is ignored.</summary>
    Warning,
    /// <summary>A file that is not an image or a known sidecar (counted, not an error).</summary>
    Ignored,
}

/// <summary>One line of <c>build_report.jsonl</c>: a file (relative to the source root), what went wrong and why.</summary>
public sealed record BuildProblem(
    [property: JsonPropertyName("path")] string Path,
    [property: JsonPropertyName("severity")] ProblemSeverity Severity,
    [property: JsonPropertyName("code")] string Code,
    [property: JsonPropertyName("message")] string Message,
    [property: JsonPropertyName("id")] string? Id = null);

/// <summary>Thread-safe collector of per-file problems; written sorted so the report is reproducible.</summary>
public sealed class BuildReport
{
    public const string FileName = "build_report.jsonl";
    readonly List<BuildProblem> _problems = [];

    public void Add(BuildProblem problem) { lock (_problems) _problems.Add(problem); }

    public void Reject(string path, string code, string message, string? id = null) => Add(new(path, ProblemSeverity.Rejected, code, message, id));
    public void Warn(string path, string code, string message, string? id = null) => Add(new(path, ProblemSeverity.Warning, code, message, id));
    public void Ignore(string path, string code, string message) => Add(new(path, ProblemSeverity.Ignored, code, message));

    public IReadOnlyList<BuildProblem> Problems
    {
        get
        {
            lock (_problems)
                return _problems.OrderBy(p => p.Path, StringComparer.Ordinal).ThenBy(p => p.Code, StringComparer.Ordinal)
                    .ThenBy(p => p.Message, StringComparer.Ordinal).ToList();
        }
    }

    public SortedDictionary<string, int> Counts(ProblemSeverity severity) =>
        new(Problems.Where(p => p.Severity == severity).GroupBy(p => p.Code).ToDictionary(g => g.Key, g => g.Count()), StringComparer.Ordinal);

    public void Write(string path) => AtomicFile.WriteAllLines(path, Problems.Select(p => JsonSerializer.Serialize(p, WorkbenchJson.Lines)));

    public static IReadOnlyList<BuildProblem> Read(string path) =>
        File.ReadLines(path).Where(l => l.Length > 0).Select(l => JsonSerializer.Deserialize<BuildProblem>(l, WorkbenchJson.Lines)!).ToList();
}
