using RetriBooru.Settings;
using RetriBooru.Metrics.Vqa;
using SkiaSharp;

namespace RetriBooru.Metrics;

/// <summary>A retrieved reference: its image (already the crop the concept names), concept word and optional figure mask.</summary>
public sealed record ScoringReference(SKBitmap Image, Concept Concept, SKBitmap? FigureMask = null)
{
    public bool IsFace => Concept == Concept.Face;
    public bool IsClothing => Concept == Concept.Clothes;
}

/// <summary>
/// One generated sample. Face and clothing boxes / figure mask are optional: without a box the whole image is the
/// view compared with that concept's references; without a mask nothing is greyed out.
/// </summary>
public sealed record ScoringSample(SKBitmap Image, int SampleIndex, long Seed, string? ImagePath = null, SKRectI? FaceBox = null, SKRectI? ClothingBox = null, SKBitmap? FigureMask = null);

/// <summary>
/// One reference set to score: its references, the prompt (text and tags), the character's leakage baseline and, with
/// ground truth, the attributes the references' source images have (for attribute agreement).
/// </summary>
public sealed record ScoringReferenceSet(string Id, IReadOnlyList<ScoringReference> References, string Prompt, IReadOnlyList<string> PromptTags,
    double? LeakageBaseline = null, ExpectedAttributes? Expected = null);

/// <summary>
/// The models a scorer reads images with: the identity embedder, the VQA provider and answer distance of SWD, the
/// attribute probe (attribute agreement, prompt consistency; optional) and the embedder of leakage (the identity
/// embedder when not given).
/// </summary>
public sealed record ScoringModels(IImageEmbedder Identity, IVqaProvider Vqa, IAnswerDistance AnswerDistance, AttributeProbe? Probe = null, IImageEmbedder? Leakage = null);

/// <summary>SWD's identity baselines b: of the embedding identity, and of attribute agreement (null: SWD always weighs by the embedder).</summary>
public sealed record SwdBaselines(double Identity, double? Attributes = null);

/// <summary>CLIP's image and text towers, for clip_t.</summary>
public sealed record ClipTowers(IImageEmbedder Image, ITextEmbedder Text);

/// <summary>
/// Scores the samples of one reference set into <see cref="ResultRow"/>s for <see cref="ResultsTable"/>:
/// per sample identity_face, identity_clothing, identity (their mean), prompt_consistency (probe, when the prompt names a
/// probe attribute), attribute_agreement(_face, _clothes) (probe + expected attributes, <see cref="AttributeAgreement"/>),
/// clip_t (when CLIP towers are given), leakage (when the set has a leakage baseline); per set swd.
/// Scores that do not apply are left out of the row (and so out of the summary).
/// <para>SWD's identity weights come from attribute agreement (against <see cref="SwdBaselines.Attributes"/>) when that
/// baseline is given and the set has expected attributes, otherwise from the embedding identity (against
/// <see cref="SwdBaselines.Identity"/>).</para>
/// </summary>
public sealed class EvaluationScorer(ScoringModels models, SwdBaselines baselines, ClipTowers? clip = null)
{
    readonly SwdEvaluator _swd = new(models.Vqa, models.AnswerDistance, baselines.Identity);
    readonly SwdEvaluator? _swdByAttributes = baselines.Attributes is double b ? new(models.Vqa, models.AnswerDistance, b) : null;
    readonly LeakageScorer _leakage = new(models.Leakage ?? models.Identity);
    readonly IImageEmbedder _identity = models.Identity;
    readonly AttributeProbe? _probe = models.Probe;

    public IReadOnlyList<ResultRow> Score(string model, string split, ScoringReferenceSet set, IReadOnlyList<ScoringSample> samples, CancellationToken cancellationToken = default)
    {
        if (samples.Count == 0) throw new ArgumentException($"reference set '{set.Id}': no samples to score");
        var faceRefs = set.References.Where(r => r.IsFace).Select(Masked).ToList();
        var clothingRefs = set.References.Where(r => r.IsClothing).Select(Masked).ToList();
        var rows = new List<ResultRow>();
        var identities = new List<double>();
        var agreements = new List<double>();
        bool attributesApply = _probe is not null && set.Expected is { IsEmpty: false };
        try
        {
            foreach (var sample in samples)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var scores = new Dictionary<string, double>();
                using var faceView = faceRefs.Count > 0 ? View(sample, sample.FaceBox) : null;
                using var clothingView = clothingRefs.Count > 0 ? View(sample, sample.ClothingBox) : null;
                if (faceView is null && clothingView is null) throw new ArgumentException($"reference set '{set.Id}' has no face or clothes reference to compare identity with");
                var identity = IdentitySimilarity.Score(_identity, new IdentityViews(faceView, clothingView), faceRefs, clothingRefs);
                if (identity.Face is double f) scores["identity_face"] = f;
                if (identity.Clothing is double c) scores["identity_clothing"] = c;
                scores["identity"] = identity.Combined;
                identities.Add(identity.Combined);
                if (attributesApply)
                {
                    var (face, clothes, combined) = set.Expected!.Agreement(_probe!.Predict(sample.Image));
                    if (face is double af) scores["attribute_agreement_face"] = af;
                    if (clothes is double ac) scores["attribute_agreement_clothes"] = ac;
                    double agreement = combined ?? 0; // not empty (attributesApply), so at least one concept scored
                    scores["attribute_agreement"] = agreement;
                    agreements.Add(agreement);
                }
                if (_probe is not null && PromptConsistency.FromProbe(_probe, sample.Image, set.PromptTags).Score is double p) scores["prompt_consistency"] = p;
                if (clip is not null) scores["clip_t"] = PromptConsistency.ClipT(clip.Image, clip.Text, sample.Image, set.Prompt);
                if (set.LeakageBaseline is double beta)
                    scores["leakage"] = _leakage.Score(new MaskedImage(sample.Image, sample.FigureMask), set.References.Select(r => new MaskedImage(r.Image, r.FigureMask)).ToList(), beta).Score;
                rows.Add(new ResultRow(model, split, set.Id, sample.SampleIndex, sample.Seed, sample.ImagePath, scores));
            }
            if (samples.Count >= 2)
            {
                var (evaluator, weights) = attributesApply && _swdByAttributes is not null ? (_swdByAttributes, agreements) : (_swd, identities);
                var swd = evaluator.Evaluate(samples.Select(s => s.Image).ToList(), weights, set.References.Select(r => r.Image).ToList(), cancellationToken);
                rows.Add(new ResultRow(model, split, set.Id, null, null, null, new Dictionary<string, double> { ["swd"] = swd.Value }));
            }
        }
        finally
        {
            foreach (var r in faceRefs.Concat(clothingRefs)) r.Dispose();
        }
        return rows;
    }

    /// <summary>A reference with its background greyed when its mask is known (a copy the caller disposes).</summary>
    static SKBitmap Masked(ScoringReference reference) =>
        reference.FigureMask is null ? reference.Image.Copy() : ImageOps.FillMasked(reference.Image, reference.FigureMask, LeakageScorer.NeutralFill, outside: true);

    static SKBitmap View(ScoringSample sample, SKRectI? box)
    {
        using var source = sample.FigureMask is null ? sample.Image.Copy() : ImageOps.FillMasked(sample.Image, sample.FigureMask, LeakageScorer.NeutralFill, outside: true);
        return box is SKRectI b ? ImageOps.Crop(source, b) : source.Copy();
    }
}
