using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Xunit;

namespace RetriBooru.Tests;

/// <summary>
/// The documentation's links hold: every relative link and image in README.md and docs/**/*.md points at a file
/// (or folder) of the repository, every #anchor names a heading of its target under GitHub's slug rules, and the
/// README stays a short front page that opens with the quickstart and test commands. Anchors that code, notebooks
/// and specs cite (README.md#..., docs/....md#...) are checked the same way.
/// </summary>
public class DocsLinkTests
{
    const string QuickstartCommand = "dotnet run --project lib/RetriBooru.Cli -c Release -- quickstart";
    const string TestCommand = "dotnet test Workbench.sln";
    const int MaxReadmeLines = 220;

    static IReadOnlyList<string> DocumentationFiles(string root)
    {
        var files = new List<string> { Path.Combine(root, "README.md") };
        var docs = Path.Combine(root, "docs");
        if (Directory.Exists(docs))
            files.AddRange(Directory.GetFiles(docs, "*.md", SearchOption.AllDirectories).Order(StringComparer.Ordinal));
        return files;
    }

    [Fact]
    public void Every_relative_link_and_image_in_the_readme_and_docs_resolves()
    {
        var files = DocumentationFiles(RepoPaths.Root);
        Assert.True(files.Count >= 2, "expected README.md and the docs/ pages");
        var broken = MarkdownLinks.Check(RepoPaths.Root, files, out var checkedLinks);
        Assert.True(checkedLinks > 20, $"only {checkedLinks} relative links found: is the parser reading the files?");
        Assert.True(broken.Count == 0, $"{broken.Count} broken link(s):\n" + string.Join("\n", broken));
    }

    [Fact]
    public void Readme_is_a_short_front_page_that_opens_with_the_quickstart_and_test_commands()
    {
        var readme = Path.Combine(RepoPaths.Root, "README.md");
        var lines = File.ReadAllLines(readme);
        Assert.True(lines.Length <= MaxReadmeLines,
            $"README.md has {lines.Length} lines; the front page keeps at most {MaxReadmeLines} (move detail into docs/)");

        var commands = MarkdownLinks.FencedCommands(lines).Take(2).ToList();
        Assert.Equal(2, commands.Count);
        Assert.Equal(QuickstartCommand, commands[0]);
        Assert.Equal(TestCommand, commands[1]);
    }

    [Fact]
    public void Anchors_cited_by_code_notebooks_and_specs_exist()
    {
        var root = RepoPaths.Root;
        var sources = new List<string>();
        foreach (var (dir, pattern) in new[] { ("lib", "*.cs"), ("tests", "*.cs"), ("notebooks", "*.ipynb"), ("experiments", "*.json"), (".ci", "*") })
        {
            var full = Path.Combine(root, dir);
            if (!Directory.Exists(full)) continue;
            sources.AddRange(Directory.GetFiles(full, pattern, SearchOption.AllDirectories)
                .Where(f => !f.Split(Path.DirectorySeparatorChar).Any(p => p is "bin" or "obj")));
        }
        var cited = 0;
        var broken = new List<string>();
        foreach (var file in sources.Order(StringComparer.Ordinal))
        {
            var lines = File.ReadAllLines(file);
            for (var i = 0; i < lines.Length; i++)
                foreach (Match m in MarkdownLinks.CitedDocAnchor.Matches(lines[i]))
                {
                    cited++;
                    var target = Path.Combine(root, m.Groups["path"].Value.Replace('/', Path.DirectorySeparatorChar));
                    var where = $"{Path.GetRelativePath(root, file)}:{i + 1}: {m.Value}";
                    if (!File.Exists(target)) broken.Add($"{where}: {m.Groups["path"].Value} does not exist");
                    else if (!MarkdownLinks.Anchors(File.ReadAllLines(target)).Contains(m.Groups["anchor"].Value))
                        broken.Add($"{where}: no heading with the anchor #{m.Groups["anchor"].Value} in {m.Groups["path"].Value}");
                }
        }
        Assert.True(cited > 0, "no cited anchors found: is the pattern still matching?");
        Assert.True(broken.Count == 0, $"{broken.Count} broken anchor(s):\n" + string.Join("\n", broken));
    }

    [Fact]
    public void The_checker_names_each_broken_link_with_its_file_and_line()
    {
        // A small repository of its own (index.md and pages/, so that this file cites no real doc anchor).
        using var tmp = new TempDir();
        Directory.CreateDirectory(tmp.File("pages"));
        File.WriteAllText(tmp.File("index.md"), string.Join("\n",
            "# Front page",
            "",
            "See [the guide](pages/guide.md#setting-it-up-step-1) and [missing](pages/nope.md).",
            "![figure](pages/images/missing.png)",
            "Also [a bad anchor](pages/guide.md#no-such-heading) and [here](#front-page) and [web](https://example.org/x.md).",
            "```bash",
            "cat [not a link](nowhere.md)",
            "```",
            "`[code](nowhere.md)` is code, not a link; [a folder](pages) is fine."));
        File.WriteAllText(tmp.File("pages/guide.md"), string.Join("\n",
            "# Guide",
            "## Setting it up: step 1",
            "## `GLIBCXX_3.4.32' not found` (GCC 12)",
            "## GPU / CUDA",
            "## Guide",
            "## Closed heading ##",
            "[closed](#closed-heading)",
            "[back](../index.md#front-page), [self](#glibcxx_3432-not-found-gcc-12), [cuda](#gpu--cuda), [dup](#guide-1), [wrong](#gpu-cuda)",
            "[outside](../../elsewhere.md)"));

        var broken = MarkdownLinks.Check(tmp.Path, [tmp.File("index.md"), tmp.File("pages/guide.md")], out var checkedLinks);

        Assert.Equal(13, checkedLinks);
        Assert.True(broken.Count == 5, $"{broken.Count} reported:\n" + string.Join("\n", broken));
        Assert.Contains(broken, b => b.StartsWith("index.md:3: [missing](pages/nope.md): pages/nope.md does not exist", StringComparison.Ordinal));
        Assert.Contains(broken, b => b.StartsWith("index.md:4: ![figure](pages/images/missing.png)", StringComparison.Ordinal));
        Assert.Contains(broken, b => b.StartsWith("index.md:5: [a bad anchor](pages/guide.md#no-such-heading): no heading", StringComparison.Ordinal));
        Assert.Contains(broken, b => b.StartsWith("pages/guide.md:8: [wrong](#gpu-cuda): no heading", StringComparison.Ordinal));
        Assert.Contains(broken, b => b.StartsWith("pages/guide.md:9: [outside](../../elsewhere.md): points outside", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("Runtime: device, threads, seeds", "runtime-device-threads-seeds")]
    [InlineData("`GLIBCXX_3.4.32' not found` (Debian 12, Ubuntu 22.04, other GCC 12 systems)", "glibcxx_3432-not-found-debian-12-ubuntu-2204-other-gcc-12-systems")]
    [InlineData("\"Expected false to be true ... toFloat at Scalar.h\", \"Unknown scalar type\" (fixed on our side)", "expected-false-to-be-true--tofloat-at-scalarh-unknown-scalar-type-fixed-on-our-side")]
    [InlineData("GPU / CUDA", "gpu--cuda")]
    [InlineData("Does it learn? (RetriNet vs text-only, `experiments/retrinet-identity.json`)", "does-it-learn-retrinet-vs-text-only-experimentsretrinet-identityjson")]
    [InlineData("A [linked](other.md) and **bold** _word_ snake_case heading", "a-linked-and-bold-word-snake_case-heading")]
    public void Slugs_follow_githubs_rules(string heading, string slug) => Assert.Equal(slug, MarkdownLinks.Slug(heading));
}

/// <summary>A small reader of the Markdown this repository writes: ATX headings, inline links and images, fences.</summary>
static class MarkdownLinks
{
    /// <summary>A path README.md or docs/NAME.md, then '#' and an anchor, cited in code, a notebook or a spec (optionally behind ../).</summary>
    public static readonly Regex CitedDocAnchor = new(
        @"(?<![\w.-])(?:\.\./)*(?<path>README\.md|docs/(?:[\w.-]+/)*[\w.-]+\.md)#(?<anchor>[\w-]+)", RegexOptions.CultureInvariant);

    static readonly Regex InlineLink = new(@"(?<image>!?)\[(?<text>[^\]]*)\]\((?<target><[^>]*>|[^\s)]+)(?:\s+""[^""]*"")?\)", RegexOptions.CultureInvariant);
    static readonly Regex ReferenceDefinition = new(@"^ {0,3}\[(?<text>[^\]]+)\]:\s*(?<target><[^>]*>|\S+)", RegexOptions.CultureInvariant);
    static readonly Regex HtmlReference = new(@"<(?:img|a)\b[^>]*?\b(?:src|href)\s*=\s*""(?<target>[^""]*)""", RegexOptions.CultureInvariant | RegexOptions.IgnoreCase);
    static readonly Regex HtmlAnchor = new(@"<a\b[^>]*?\b(?:name|id)\s*=\s*""(?<anchor>[^""]*)""", RegexOptions.CultureInvariant | RegexOptions.IgnoreCase);
    static readonly Regex Heading = new(@"^ {0,3}#{1,6}(?:[ \t]+(?<text>.*?))?(?:[ \t]+#+)?[ \t]*$", RegexOptions.CultureInvariant);
    static readonly Regex CodeSpan = new(@"(`+)(.+?)\1", RegexOptions.CultureInvariant);
    static readonly Regex Fence = new(@"^ {0,3}(```|~~~)", RegexOptions.CultureInvariant);
    static readonly Regex Scheme = new(@"^(?:[A-Za-z][A-Za-z0-9+.-]*:|//)", RegexOptions.CultureInvariant);

    /// <summary>Lines outside fenced code blocks, with their 1-based line numbers.</summary>
    static IEnumerable<(int Number, string Text)> ProseLines(IReadOnlyList<string> lines)
    {
        string? fence = null;
        for (var i = 0; i < lines.Count; i++)
        {
            var m = Fence.Match(lines[i]);
            if (m.Success)
            {
                if (fence is null) fence = m.Groups[1].Value;
                else if (m.Groups[1].Value == fence) fence = null;
                continue;
            }
            if (fence is null) yield return (i + 1, lines[i]);
        }
    }

    /// <summary>The commands in fenced code blocks, in order: each non-empty, non-comment line, trailing comment removed.</summary>
    public static IEnumerable<string> FencedCommands(IReadOnlyList<string> lines)
    {
        string? fence = null;
        foreach (var line in lines)
        {
            var m = Fence.Match(line);
            if (m.Success)
            {
                if (fence is null) fence = m.Groups[1].Value;
                else if (m.Groups[1].Value == fence) fence = null;
                continue;
            }
            if (fence is null) continue;
            var text = line.Trim();
            if (text.Length == 0 || text.StartsWith('#')) continue;
            var comment = text.IndexOf(" #", StringComparison.Ordinal);
            yield return (comment >= 0 ? text[..comment] : text).TrimEnd();
        }
    }

    /// <summary>GitHub's heading anchor: rendered text, lowercased, everything but letters, digits, marks, '_', '-' and spaces removed, spaces to '-'.</summary>
    public static string Slug(string heading)
    {
        // Render the inline markup: code spans keep their text verbatim, links and images keep their text,
        // emphasis markers disappear (a '_' inside a word or in code stays, as GitHub keeps it).
        var parts = new StringBuilder();
        var last = 0;
        foreach (Match code in CodeSpan.Matches(heading))
        {
            parts.Append(RenderProse(heading[last..code.Index]));
            parts.Append(code.Groups[2].Value);
            last = code.Index + code.Length;
        }
        parts.Append(RenderProse(heading[last..]));

        var slug = new StringBuilder();
        foreach (var c in parts.ToString().Trim().ToLowerInvariant())
        {
            var category = char.GetUnicodeCategory(c);
            if (c == ' ') slug.Append('-');
            else if (c == '-' || char.IsLetterOrDigit(c) || category is UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark
                     or UnicodeCategory.EnclosingMark or UnicodeCategory.ConnectorPunctuation or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber)
                slug.Append(c);
        }
        return slug.ToString();

        static string RenderProse(string s)
        {
            s = InlineLink.Replace(s, m => m.Groups["text"].Value);
            return Regex.Replace(s, @"(?<![\p{L}\p{N}])_+|_+(?![\p{L}\p{N}])", "");
        }
    }

    /// <summary>Every anchor a Markdown file offers: heading slugs (repeats get -1, -2, ... as on GitHub) and HTML name/id anchors.</summary>
    public static HashSet<string> Anchors(IReadOnlyList<string> lines)
    {
        var anchors = new HashSet<string>(StringComparer.Ordinal);
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (_, text) in ProseLines(lines))
        {
            var heading = Heading.Match(text);
            if (heading.Success)
            {
                var slug = Slug(heading.Groups["text"].Value);
                var count = seen.GetValueOrDefault(slug);
                seen[slug] = count + 1;
                anchors.Add(count == 0 ? slug : $"{slug}-{count}");
            }
            foreach (Match a in HtmlAnchor.Matches(text)) anchors.Add(a.Groups["anchor"].Value);
        }
        return anchors;
    }

    /// <summary>
    /// Checks every relative link and image in the given Markdown files; returns one line per broken one,
    /// "FILE:LINE: [text](target): problem", FILE relative to <paramref name="root"/>.
    /// </summary>
    public static List<string> Check(string root, IEnumerable<string> markdownFiles, out int checkedLinks)
    {
        root = Path.GetFullPath(root);
        var broken = new List<string>();
        var anchorCache = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        HashSet<string> AnchorsOf(string path) =>
            anchorCache.TryGetValue(path, out var a) ? a : anchorCache[path] = Anchors(File.ReadAllLines(path));
        checkedLinks = 0;

        foreach (var file in markdownFiles.Select(Path.GetFullPath))
        {
            var relativeFile = Path.GetRelativePath(root, file).Replace(Path.DirectorySeparatorChar, '/');
            foreach (var (number, text) in ProseLines(File.ReadAllLines(file)))
            {
                var prose = CodeSpan.Replace(text, m => new string(' ', m.Length));
                // code spans are blanked (same length), so a match's position also locates it in the original line
                var links = InlineLink.Matches(prose).Concat(ReferenceDefinition.Matches(prose)).Concat(HtmlReference.Matches(prose))
                    .OrderBy(m => m.Index)
                    .Select(m => (Shown: text.Substring(m.Index, m.Length), Target: m.Groups["target"].Value));
                foreach (var (shown, rawTarget) in links)
                {
                    var target = rawTarget.Trim('<', '>');
                    if (target.Length == 0 || Scheme.IsMatch(target)) continue;
                    checkedLinks++;
                    var problem = Problem(root, file, target, AnchorsOf);
                    if (problem is not null) broken.Add($"{relativeFile}:{number}: {shown}: {problem}");
                }
            }
        }
        return broken;
    }

    static string? Problem(string root, string file, string target, Func<string, HashSet<string>> anchorsOf)
    {
        var hash = target.IndexOf('#');
        var pathPart = hash >= 0 ? target[..hash] : target;
        var anchor = hash >= 0 ? Uri.UnescapeDataString(target[(hash + 1)..]) : null;
        var query = pathPart.IndexOf('?');
        if (query >= 0) pathPart = pathPart[..query];

        string resolved;
        if (pathPart.Length == 0) resolved = file;
        else
        {
            var decoded = Uri.UnescapeDataString(pathPart).Replace('/', Path.DirectorySeparatorChar);
            resolved = Path.GetFullPath(decoded.StartsWith(Path.DirectorySeparatorChar)
                ? Path.Combine(root, decoded.TrimStart(Path.DirectorySeparatorChar))
                : Path.Combine(Path.GetDirectoryName(file)!, decoded));
            var inside = Path.GetRelativePath(root, resolved);
            if (inside == ".." || inside.StartsWith(".." + Path.DirectorySeparatorChar, StringComparison.Ordinal) || Path.IsPathRooted(inside))
                return "points outside the repository";
            if (!File.Exists(resolved) && !Directory.Exists(resolved))
                return $"{Path.GetRelativePath(root, resolved).Replace(Path.DirectorySeparatorChar, '/')} does not exist";
        }

        if (anchor is null || !resolved.EndsWith(".md", StringComparison.OrdinalIgnoreCase) || !File.Exists(resolved)) return null;
        if (anchor.Length == 0) return "empty anchor";
        return anchorsOf(resolved).Contains(anchor)
            ? null
            : $"no heading with the anchor #{anchor} in {Path.GetRelativePath(root, resolved).Replace(Path.DirectorySeparatorChar, '/')}";
    }
}
