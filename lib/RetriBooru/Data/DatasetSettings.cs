using System.Text.Json.Serialization;
using RetriBooru.Data.Synth;
using RetriBooru.Imaging;
using RetriBooru.Settings;

namespace RetriBooru.Data;

/// <summary>
/// The dataset concern (the spec's <c>dataset</c> section, the flags of <c>dataset synth</c> and, for the fields that
/// are not about the synthetic world, of <c>dataset build</c>): the synthetic world, the splits and the references.
/// Defined once here with JSON names, defaults, ranges and help. The defaults are the quickstart's world, so
/// <c>dataset synth --out D</c> makes the dataset the quickstart and the tutorials train on.
/// </summary>
public sealed record DatasetSettings
{
    /// <summary>A fresh instance: where the library's lower-level options (<see cref="SynthOptions"/>, <see cref="BuildOptions"/>) take their defaults.</summary>
    public static readonly DatasetSettings Default = new();

    [JsonPropertyName("characters"), Setting("Characters in the synthetic world.", Min = 2, Max = 100_000)]
    public int Characters { get; init; } = 16;

    [JsonPropertyName("outfits"), Setting("Outfits (clothing identities) per synthetic character (each has its own top colour, never the hair colour).", Min = 1, Max = SynthVocabulary.MaxOutfitsPerCharacter)]
    public int Outfits { get; init; } = 3;

    [JsonPropertyName("images_per_character"), Setting("Images of each synthetic character.", Min = 2, Max = 100_000)]
    public int ImagesPerCharacter { get; init; } = 30;

    [JsonPropertyName("size"), Setting("Side of the synthetic images in pixels.", Min = 16, Max = 1024)]
    public int Size { get; init; } = 32;

    [JsonPropertyName("variant_rate"), Setting("Fraction of synthetic images that are near-duplicates of another (reposts, shifts, recolours, zooms).", Min = 0, Max = 0.5)]
    public double VariantRate { get; init; } = 0.06;

    [JsonPropertyName("seed"), Setting("Seed of the world, the images, the splits and the references.")]
    public long Seed { get; init; } = 7;

    [JsonPropertyName("source"), Setting("A Danbooru-style folder to build from instead of the synthetic world.",
        SpecOnly = "dataset synth draws its own source; dataset build takes the folder as --source")]
    public string? Source { get; init; }

    [JsonPropertyName("unseen_fraction"), Setting("Share of the characters held out entirely (split 'unseen'; round(characters x share), at least one of three or more).", Min = 0, Max = 0.99)]
    public double UnseenFraction { get; init; } = 0.25;

    [JsonPropertyName("heldout_fraction"), Setting("Share of each seen character's images held out (split 'heldout').", Min = 0, Max = 0.99)]
    public double HeldoutFraction { get; init; } = 0.1;

    [JsonPropertyName("face_references"), Setting("Face references per target.", Min = 0, Max = 16)]
    public int FaceReferences { get; init; } = 2;

    [JsonPropertyName("clothes_references"), Setting("Clothes references per target.", Min = 0, Max = 16)]
    public int ClothesReferences { get; init; } = 2;

    [JsonPropertyName("near_duplicate_threshold"), Setting("pHash Hamming distance (of 64 bits) at or under which an image is a near-duplicate of the target and never its reference.", Min = 0, Max = 64)]
    public int NearDuplicateThreshold { get; init; } = PerceptualHash.DefaultThreshold;

    [JsonPropertyName("crop_size"), Setting("Side of the square reference crops in pixels; 0 = the width of the image they are cut from.", Min = 0, Max = 4096)]
    public int CropSize { get; init; }

    [JsonPropertyName("max_pixels"), Setting("Refuse images whose header claims more pixels (decompression bombs).", Min = 1, Max = 1e12)]
    public long MaxPixels { get; init; } = ImageProbe.DefaultMaxPixels;

    /// <summary>Every problem: ranges (labelled by <paramref name="label"/>, a spec path or a flag) and the rules between fields.</summary>
    public IReadOnlyList<string> Problems(Func<SettingField, string> label)
    {
        var problems = SettingFields.RangeProblems(this, label).ToList();
        if (FaceReferences + ClothesReferences == 0)
            problems.Add($"{label(SettingFields.Field(typeof(DatasetSettings), nameof(FaceReferences)))}: at least one face or clothes reference is needed");
        return problems;
    }

    /// <summary>The synthetic world these settings describe.</summary>
    public SynthOptions Synth() => new()
    {
        Characters = Characters, OutfitsPerCharacter = Outfits, ImagesPerCharacter = ImagesPerCharacter,
        Size = Size, Seed = Seed, VariantRate = VariantRate,
    };

    /// <summary>The builder's options (splits, references, checks) for the manifests of <paramref name="schemes"/>.</summary>
    public BuildOptions Build(IReadOnlyList<ReferenceScheme> schemes) => new()
    {
        Seed = Seed, FaceReferences = FaceReferences, ClothesReferences = ClothesReferences, Schemes = schemes,
        NearDuplicateThreshold = NearDuplicateThreshold, MaxPixels = MaxPixels,
        UnseenFraction = UnseenFraction, HeldoutFraction = HeldoutFraction, CropSize = CropSize,
    };
}
