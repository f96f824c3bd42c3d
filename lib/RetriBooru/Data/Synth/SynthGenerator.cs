using System.Globalization;
using System.Text.Json;
using RetriBooru.Imaging;
using RetriBooru.Runtime;
using SkiaSharp;

namespace RetriBooru.Data.Synth;

/// <summary>Configuration of a synthetic world; recorded next to its output so it can be regenerated.</summary>
public sealed record SynthOptions
{
    // Defaults: the one definition in DatasetSettings.
    public int Characters { get; init; } = DatasetSettings.Default.Characters;
    public int OutfitsPerCharacter { get; init; } = DatasetSettings.Default.Outfits;
    public int ImagesPerCharacter { get; init; } = DatasetSettings.Default.ImagesPerCharacter;
    public int Size { get; init; } = DatasetSettings.Default.Size;
    public long Seed { get; init; } = DatasetSettings.Default.Seed;
    /// <summary>Fraction of images that are near-duplicates (repost, shift, recolour, zoom) of an earlier image.</summary>
    public double VariantRate { get; init; } = DatasetSettings.Default.VariantRate;

    public void Validate()
    {
        if (Characters < 1) throw new ArgumentException("--characters must be at least 1");
        if (ImagesPerCharacter < 2) throw new ArgumentException("--images-per-character must be at least 2 (every image needs another of its identity)");
        if (OutfitsPerCharacter < 1 || OutfitsPerCharacter > SynthVocabulary.MaxOutfitsPerCharacter)
            throw new ArgumentException($"--outfits must be 1..{SynthVocabulary.MaxOutfitsPerCharacter}");
        if (Size < 16 || Size > 2048) throw new ArgumentException("--size must be 16..2048 px");
        if (VariantRate < 0 || VariantRate > 0.5) throw new ArgumentException("--variant-rate must be 0..0.5");
    }
}

/// <summary>
/// Writes a RetriBooru-Synth world as a Danbooru-style source folder, in the format <see cref="Ingest.DatasetBuilder"/>
/// reads: <c>ID.png</c>, <c>ID.txt</c> (comma-separated tags, <c>character:</c> and <c>artist:</c> prefixed),
/// <c>ID.mask.png</c>, <c>ID.face.txt</c> (x y w h, normalised), plus <c>attributes.jsonl</c> (ground truth) and
/// <c>synth.json</c> (the options). Same options, byte-identical files.
/// </summary>
public static class SynthGenerator
{
    public const string OptionsFile = "synth.json";

    /// <summary>What one image will show: decided sequentially (cheap), rendered in parallel.</summary>
    sealed record ImagePlan(string Id, SynthCharacter Character, SynthOutfit Outfit, SynthScene Scene, string? VariantOf, string? VariantKind);

    public static IReadOnlyList<SynthAttributes> Generate(string sourceDir, SynthOptions options, IProgress<DatasetProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        options.Validate();
        PrepareFolder(sourceDir);
        // Written first: it marks the folder as the generator's, so an interrupted run can be cleared and rerun.
        AtomicFile.WriteAllText(Path.Combine(sourceDir, OptionsFile), JsonSerializer.Serialize(options, WorkbenchJson.Pretty) + "\n");
        var world = SynthWorld.Create(options.Characters, options.OutfitsPerCharacter, options.Seed);
        var plans = Plan(world, options);
        var counter = new ProgressCounter(progress, "generate", plans.Count);
        counter.Start();
        var attributes = new SynthAttributes[plans.Count];
        Parallel.For(0, plans.Count, new ParallelOptions { CancellationToken = cancellationToken, MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
        {
            var plan = plans[i];
            using (var render = FigureRenderer.Render(plan.Character, plan.Outfit, plan.Scene, options.Size))
            {
                BulkFile.WriteAllBytes(Path.Combine(sourceDir, plan.Id + ".png"), ImageTensor.EncodePng(render.Image));
                BulkFile.WriteAllBytes(Path.Combine(sourceDir, plan.Id + ".mask.png"), ImageTensor.EncodePng(render.Mask));
                BulkFile.WriteAllText(Path.Combine(sourceDir, plan.Id + ".face.txt"),
                    string.Join(' ', render.FaceBox.Select(v => v.ToString("0.####", CultureInfo.InvariantCulture))) + "\n");
            }
            BulkFile.WriteAllText(Path.Combine(sourceDir, plan.Id + ".txt"), string.Join(", ", Tags(plan)) + "\n");
            attributes[i] = ToAttributes(plan);
            counter.Step(plan.Id);
        });
        SynthAttributesFile.Write(Path.Combine(sourceDir, SynthAttributesFile.FileName), attributes);
        return attributes;
    }

    /// <summary>
    /// <paramref name="count"/> pictures rendered in memory, each of a new character (<see cref="SynthWorld.DrawIndependent"/>)
    /// in a scene drawn like the generator's, with its ground truth. Same arguments, same pixels. The caller disposes the bitmaps.
    /// </summary>
    public static IReadOnlyList<(SKBitmap Image, SynthAttributes Attributes)> RenderIndependentPictures(int count, int size, long seed, CancellationToken cancellationToken = default)
    {
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), "need at least one picture");
        if (size < 16 || size > 2048) throw new ArgumentOutOfRangeException(nameof(size), "size must be 16..2048 px");
        var random = Seeding.Stream(seed, "synth-independent");
        var plans = new ImagePlan[count];
        for (int i = 0; i < count; i++)
        {
            var character = SynthWorld.DrawIndependent(random, i);
            plans[i] = new ImagePlan((i + 1).ToString("000000", CultureInfo.InvariantCulture), character, character.Outfits[0], SynthScene.Draw(random), null, null);
        }
        var pictures = new (SKBitmap, SynthAttributes)[count];
        try
        {
            Parallel.For(0, count, new ParallelOptions { CancellationToken = cancellationToken, MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
            {
                using var render = FigureRenderer.Render(plans[i].Character, plans[i].Outfit, plans[i].Scene, size);
                pictures[i] = (render.Image.Copy(), ToAttributes(plans[i]));
            });
        }
        catch
        {
            foreach (var (image, _) in pictures) image?.Dispose();
            throw;
        }
        return pictures;
    }

    /// <summary>The folder must be new, empty, or an earlier synthetic source (which is cleared, so no stale image survives).</summary>
    static void PrepareFolder(string sourceDir)
    {
        if (Directory.Exists(sourceDir) && Directory.EnumerateFileSystemEntries(sourceDir).Any())
        {
            if (!File.Exists(Path.Combine(sourceDir, OptionsFile)))
                throw new IOException($"{sourceDir}: folder is not empty and was not made by the synthetic generator; refusing to overwrite it");
            foreach (var file in Directory.EnumerateFiles(sourceDir)) File.Delete(file);
        }
        Directory.CreateDirectory(sourceDir);
    }

    static List<ImagePlan> Plan(IReadOnlyList<SynthCharacter> world, SynthOptions options)
    {
        var plans = new List<ImagePlan>();
        var random = Seeding.Stream(options.Seed, "synth-plan");
        int next = 0;
        foreach (var character in world)
        {
            var outfitSequence = OutfitSequence(character.Outfits.Count, options.ImagesPerCharacter, random);
            var own = new List<ImagePlan>();
            foreach (int outfitIndex in outfitSequence)
            {
                string id = (++next).ToString("000000", CultureInfo.InvariantCulture);
                var sameOutfit = own.Where(p => p.Outfit.Index == outfitIndex && p.VariantOf is null).ToList();
                ImagePlan plan;
                if (sameOutfit.Count > 0 && random.NextDouble() < options.VariantRate)
                {
                    var original = sameOutfit[random.Next(sameOutfit.Count)];
                    string kind = VariantKinds[random.Next(VariantKinds.Length)];
                    var scene = kind switch
                    {
                        "repost" => original.Scene,
                        "shifted" => original.Scene with { ShiftXPx = random.Next(2) == 0 ? -1f : 1f, ShiftYPx = random.Next(2) == 0 ? -1f : 1f },
                        "recolored" => original.Scene with { Brightness = random.Next(2) == 0 ? 0.9f : 1.1f },
                        _ => original.Scene with { Zoom = 1.05f },
                    };
                    plan = new ImagePlan(id, character, original.Outfit, scene, original.Id, kind);
                }
                else
                {
                    plan = new ImagePlan(id, character, character.Outfits[outfitIndex], SynthScene.Draw(random), null, null);
                }
                own.Add(plan);
            }
            plans.AddRange(own);
        }
        return plans;
    }

    static readonly string[] VariantKinds = ["repost", "shifted", "recolored", "zoomed"];

    /// <summary>A long-tailed outfit mix (weights 1, 1/2, 1/3, ...), at least two images per outfit, shuffled.</summary>
    static List<int> OutfitSequence(int outfits, int images, Random random)
    {
        double total = Enumerable.Range(1, outfits).Sum(k => 1.0 / k);
        var counts = Enumerable.Range(0, outfits).Select(o => Math.Max(2, (int)Math.Round(images * (1.0 / (o + 1)) / total))).ToArray();
        while (counts.Sum() > images && counts.Max() > 2) counts[Array.IndexOf(counts, counts.Max())]--;
        while (counts.Sum() < images) counts[0]++;
        var sequence = counts.SelectMany((count, outfit) => Enumerable.Repeat(outfit, count)).ToList();
        for (int i = sequence.Count - 1; i > 0; i--)
        {
            int j = random.Next(i + 1);
            (sequence[i], sequence[j]) = (sequence[j], sequence[i]);
        }
        return sequence;
    }

    static IEnumerable<string> Tags(ImagePlan plan)
    {
        yield return "character:" + plan.Character.Tag;
        yield return "artist:" + plan.Scene.Artist;
        yield return "1girl";
        yield return "solo";
        foreach (var tag in plan.Character.FaceTags) yield return tag;
        foreach (var tag in plan.Outfit.Tags) yield return tag;
        yield return plan.Scene.Pose;
        yield return plan.Scene.Expression;
        yield return plan.Scene.Background switch
        {
            "simple" => "simple_background",
            "gradient" => "gradient_background",
            "sky" => "blue_sky",
            _ => plan.Scene.Background,
        };
        if (plan.Scene.Background is "sky" or "beach" or "forest") yield return "outdoors";
        if (plan.Scene.Background is "classroom") yield return "indoors";
        if (plan.Scene.FigureHeight >= 0.76f) yield return "full_body";
    }

    static SynthAttributes ToAttributes(ImagePlan plan) => new()
    {
        Id = plan.Id,
        Character = plan.Character.Tag,
        Outfit = plan.Outfit.Index,
        HairColor = plan.Character.HairColor,
        HairStyle = plan.Character.HairStyle,
        EyeColor = plan.Character.EyeColor,
        SkinTone = plan.Character.SkinTone,
        Accessory = plan.Character.Accessory,
        Top = plan.Outfit.Top,
        TopColor = plan.Outfit.TopColor,
        Bottom = plan.Outfit.Bottom,
        BottomColor = plan.Outfit.BottomColor,
        Pose = plan.Scene.Pose,
        Expression = plan.Scene.Expression,
        Background = plan.Scene.Background,
        Artist = plan.Scene.Artist,
        Position = plan.Scene.PositionBucket,
        Scale = plan.Scene.ScaleBucket,
        CenterX = MathF.Round(plan.Scene.CenterX, 4),
        FeetY = MathF.Round(plan.Scene.FeetY, 4),
        FigureHeight = MathF.Round(plan.Scene.FigureHeight, 4),
        LeanDegrees = MathF.Round(plan.Scene.LeanDegrees, 2),
        Flipped = plan.Scene.Flipped,
        VariantOf = plan.VariantOf,
        VariantKind = plan.VariantKind,
    };
}
