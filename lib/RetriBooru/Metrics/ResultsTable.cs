using RetriBooru.Runtime;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace RetriBooru.Metrics;

/// <summary>
/// One scored unit: a generated sample (SampleIndex set) or a whole reference set (SampleIndex null, for set-level
/// scores such as SWD). Scores missing from <see cref="Scores"/> are undefined for that unit (e.g. a prompt that names
/// no probe attribute) and are left out of the summary, not counted as zero.
/// </summary>
public sealed record ResultRow(string Model, string Split, string ReferenceSetId, int? SampleIndex, long? Seed, string? ImagePath, IReadOnlyDictionary<string, double> Scores);

/// <summary>
/// The evaluation results table: per-sample and per-set rows plus one summary row per (model, split) holding each
/// score's mean and 95% bootstrap CI (<see cref="Bootstrap"/>), written as CSV and JSON with the run's config and
/// git commit. Output bytes depend only on the rows, config, commit and bootstrap seed (no timestamps).
/// </summary>
public sealed class ResultsTable(long bootstrapSeed = 0, int resamples = Bootstrap.DefaultResamples)
{
    readonly List<ResultRow> _rows = [];

    public IReadOnlyList<ResultRow> Rows => _rows;

    public void Add(ResultRow row)
    {
        foreach (var (name, value) in row.Scores)
            if (!double.IsFinite(value)) throw new ArgumentException($"score '{name}' of {row.Model}/{row.Split}/{row.ReferenceSetId}/{row.SampleIndex} is {value}; leave undefined scores out instead");
        _rows.Add(row);
    }

    public IReadOnlyList<string> ScoreNames => _rows.SelectMany(r => r.Scores.Keys).Distinct().OrderBy(n => n, StringComparer.Ordinal).ToList();

    /// <summary>(model, split) -> one <see cref="ScoreSummary"/> per score defined on at least one row.</summary>
    public IReadOnlyList<(string Model, string Split, IReadOnlyList<ScoreSummary> Scores)> Summaries()
    {
        var result = new List<(string, string, IReadOnlyList<ScoreSummary>)>();
        foreach (var group in _rows.GroupBy(r => (r.Model, r.Split)).OrderBy(g => g.Key.Model, StringComparer.Ordinal).ThenBy(g => g.Key.Split, StringComparer.Ordinal))
        {
            var summaries = new List<ScoreSummary>();
            foreach (var name in ScoreNames)
            {
                var values = group.Where(r => r.Scores.ContainsKey(name)).Select(r => r.Scores[name]).ToList();
                if (values.Count > 0) summaries.Add(Bootstrap.MeanInterval(name, values, bootstrapSeed, resamples));
            }
            result.Add((group.Key.Model, group.Key.Split, summaries));
        }
        return result;
    }

    /// <summary>Writes DIR/results.csv and DIR/results.json atomically; returns their paths.</summary>
    public (string Csv, string Json) Write(string directory, JsonObject config, string? gitCommit)
    {
        Directory.CreateDirectory(directory);
        var summaries = Summaries();
        var csvPath = Path.Combine(directory, "results.csv");
        var jsonPath = Path.Combine(directory, "results.json");
        AtomicFile.WriteAllText(csvPath, ToCsv(summaries));
        AtomicFile.WriteAllText(jsonPath, ToJson(summaries, config, gitCommit).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        return (csvPath, jsonPath);
    }

    string ToCsv(IReadOnlyList<(string Model, string Split, IReadOnlyList<ScoreSummary> Scores)> summaries)
    {
        var names = ScoreNames;
        var sb = new StringBuilder();
        var header = new List<string> { "row_type", "model", "split", "reference_set", "sample", "seed", "image" };
        foreach (var n in names) header.AddRange([n, n + "_ci_low", n + "_ci_high", n + "_n"]);
        sb.Append(string.Join(',', header.Select(Csv))).Append('\n');
        foreach (var r in _rows)
        {
            var cells = new List<string> { r.SampleIndex is null ? "set" : "sample", r.Model, r.Split, r.ReferenceSetId, Int(r.SampleIndex), Int(r.Seed), r.ImagePath ?? "" };
            foreach (var n in names) cells.AddRange([r.Scores.TryGetValue(n, out var v) ? Num(v) : "", "", "", ""]);
            sb.Append(string.Join(',', cells.Select(Csv))).Append('\n');
        }
        foreach (var (model, split, scores) in summaries)
        {
            var cells = new List<string> { "summary", model, split, "", "", "", "" };
            foreach (var n in names)
            {
                var s = scores.FirstOrDefault(x => x.Name == n);
                cells.AddRange(s is null ? ["", "", "", "0"] : [Num(s.Mean), Num(s.Lower), Num(s.Upper), s.Count.ToString(CultureInfo.InvariantCulture)]);
            }
            sb.Append(string.Join(',', cells.Select(Csv))).Append('\n');
        }
        return sb.ToString();
    }

    JsonObject ToJson(IReadOnlyList<(string Model, string Split, IReadOnlyList<ScoreSummary> Scores)> summaries, JsonObject config, string? gitCommit)
    {
        var rows = new JsonArray();
        foreach (var r in _rows)
        {
            var scores = new JsonObject();
            foreach (var (k, v) in r.Scores.OrderBy(kv => kv.Key, StringComparer.Ordinal)) scores[k] = v;
            rows.Add(new JsonObject
            {
                ["row_type"] = r.SampleIndex is null ? "set" : "sample", ["model"] = r.Model, ["split"] = r.Split, ["reference_set"] = r.ReferenceSetId,
                ["sample"] = r.SampleIndex, ["seed"] = r.Seed, ["image"] = r.ImagePath, ["scores"] = scores,
            });
        }
        var summaryArray = new JsonArray();
        foreach (var (model, split, scores) in summaries)
        {
            var byName = new JsonObject();
            foreach (var s in scores)
                byName[s.Name] = new JsonObject { ["mean"] = s.Mean, ["ci_low"] = s.Lower, ["ci_high"] = s.Upper, ["n"] = s.Count, ["level"] = s.Level };
            summaryArray.Add(new JsonObject { ["row_type"] = "summary", ["model"] = model, ["split"] = split, ["scores"] = byName });
        }
        return new JsonObject
        {
            ["git_commit"] = gitCommit,
            ["config"] = config.DeepClone(),
            ["bootstrap"] = new JsonObject { ["seed"] = bootstrapSeed, ["resamples"] = resamples, ["level"] = 0.95 },
            ["rows"] = rows,
            ["summaries"] = summaryArray,
        };
    }

    static string Num(double v) => v.ToString("R", CultureInfo.InvariantCulture);
    static string Int(long? v) => v?.ToString(CultureInfo.InvariantCulture) ?? "";
    static string Int(int? v) => v?.ToString(CultureInfo.InvariantCulture) ?? "";

    static string Csv(string cell) =>
        cell.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? "\"" + cell.Replace("\"", "\"\"") + "\"" : cell;
}

/// <summary>The git commit a result was produced from (recorded with every results table).</summary>
public static class GitCommit
{
    /// <summary>"&lt;sha&gt;" or "&lt;sha&gt;-dirty"; null when the folder is not in a git work tree or git is missing.</summary>
    public static string? Describe(string? directory = null)
    {
        var dir = directory ?? Environment.CurrentDirectory;
        var sha = Run(dir, "rev-parse HEAD")?.Trim();
        if (string.IsNullOrEmpty(sha)) return null;
        var status = Run(dir, "status --porcelain --untracked-files=no");
        return string.IsNullOrWhiteSpace(status) ? sha : sha + "-dirty";
    }

    static string? Run(string directory, string arguments)
    {
        try
        {
            var info = new ProcessStartInfo("git", arguments) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            using var process = Process.Start(info);
            if (process is null) return null;
            var output = process.StandardOutput.ReadToEnd();
            process.StandardError.ReadToEnd();
            if (!process.WaitForExit(10_000)) { process.Kill(); return null; }
            return process.ExitCode == 0 ? output : null;
        }
        catch (System.ComponentModel.Win32Exception) { return null; }
    }
}
